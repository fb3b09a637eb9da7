// Presentation to an X11 window (VK_KHR_surface, VK_KHR_xlib_surface,
// VK_KHR_swapchain) for the preview window. Every entry point is fetched
// with vkGetInstanceProcAddr / vkGetDeviceProcAddr, like the rest of the
// binding (libvulkan is dlopen'd), and the Xlib create-info is spelled out
// here so that building package vk needs no X11 headers: a headless build
// compiles this file but never calls it.
#ifndef NETI_VK_PRESENT_H
#define NETI_VK_PRESENT_H

#include "nv.h"

#define NV_MAX_SWAP_IMAGES 8

typedef struct NvPresent {
	VkInstance instance;
	VkPhysicalDevice pd;
	VkDevice dev;
	uint32_t family;
	VkSurfaceKHR surface;
	VkSwapchainKHR swapchain;
	VkFormat format;
	uint32_t width, height;
	uint32_t imageCount;
	VkImage images[NV_MAX_SWAP_IMAGES];
	VkFence acquired; // signalled when the acquired image may be written
	NvCmd cmd;        // the copy with its layout transitions, and its fence

	PFN_vkDestroySurfaceKHR destroySurface;
	PFN_vkGetPhysicalDeviceSurfaceSupportKHR surfaceSupport;
	PFN_vkGetPhysicalDeviceSurfaceCapabilitiesKHR surfaceCaps;
	PFN_vkGetPhysicalDeviceSurfaceFormatsKHR surfaceFormats;
	PFN_vkCreateSwapchainKHR createSwapchain;
	PFN_vkDestroySwapchainKHR destroySwapchain;
	PFN_vkGetSwapchainImagesKHR swapchainImages;
	PFN_vkAcquireNextImageKHR acquire;
	PFN_vkQueuePresentKHR present;
	PFN_vkCmdPipelineBarrier cmdBarrier;
	PFN_vkCmdCopyBufferToImage cmdCopy;
	PFN_vkCreateFence createFence;
	PFN_vkDestroyFence destroyFence;
	PFN_vkWaitForFences waitFences;
	PFN_vkResetFences resetFences;
} NvPresent;

// nv_present_init makes the surface of an Xlib window (dpy is the Display*,
// window the XID) and the objects every frame reuses. *supported says
// whether the queue family can present to it. On failure, what was made is
// destroyed; *what names the failing step.
VkResult nv_present_init(VkInstance instance, VkPhysicalDevice pd, VkDevice dev, uint32_t family,
	void *dpy, unsigned long window, NvPresent *p, int *supported, const char **what);
// nv_present_swapchain (re)creates the swapchain for a window of w x h
// pixels (the surface's own extent wins where it has one). The device must
// be idle. VK_ERROR_FORMAT_NOT_SUPPORTED: no 8-bit BGRA/RGBA format that can
// be a copy destination.
VkResult nv_present_swapchain(NvPresent *p, uint32_t w, uint32_t h);
VkResult nv_present_acquire(NvPresent *p, uint64_t timeoutNs, uint32_t *index);
// nv_present_record records: barrier after the compute that wrote src,
// image UNDEFINED -> TRANSFER_DST, copy of width*height packed pixels,
// TRANSFER_DST -> PRESENT_SRC.
VkResult nv_present_record(NvPresent *p, uint32_t index, VkBuffer src);
VkResult nv_present_queue(NvPresent *p, VkQueue q, uint32_t index);
void nv_present_destroy(NvPresent *p);

#endif
