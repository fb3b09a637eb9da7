// Implementation of present.h; see there.
#include <stdlib.h>
#include <string.h>

#include "present.h"

// VkXlibSurfaceCreateInfoKHR without <X11/Xlib.h>: Display* is an opaque
// pointer and Window an unsigned long (XID) in every Xlib.
typedef struct NvXlibSurfaceCreateInfo {
	VkStructureType sType;
	const void *pNext;
	VkFlags flags;
	void *dpy;
	unsigned long window;
} NvXlibSurfaceCreateInfo;
typedef VkResult(VKAPI_PTR *NvPFN_vkCreateXlibSurfaceKHR)(VkInstance, const NvXlibSurfaceCreateInfo *,
	const VkAllocationCallbacks *, VkSurfaceKHR *);

VkResult nv_present_init(VkInstance instance, VkPhysicalDevice pd, VkDevice dev, uint32_t family,
	void *dpy, unsigned long window, NvPresent *p, int *supported, const char **what) {
	memset(p, 0, sizeof *p);
	*supported = 0;
	p->instance = instance;
	p->pd = pd;
	p->dev = dev;
	p->family = family;

	*what = "load window-system entry points";
	NvPFN_vkCreateXlibSurfaceKHR createXlib =
		(NvPFN_vkCreateXlibSurfaceKHR)nv_instance_proc(instance, "vkCreateXlibSurfaceKHR");
#define INST(field, name) p->field = (PFN_##name)nv_instance_proc(instance, #name);
#define DEV(field, name) p->field = (PFN_##name)nv_device_proc(dev, #name);
	INST(destroySurface, vkDestroySurfaceKHR)
	INST(surfaceSupport, vkGetPhysicalDeviceSurfaceSupportKHR)
	INST(surfaceCaps, vkGetPhysicalDeviceSurfaceCapabilitiesKHR)
	INST(surfaceFormats, vkGetPhysicalDeviceSurfaceFormatsKHR)
	DEV(createSwapchain, vkCreateSwapchainKHR)
	DEV(destroySwapchain, vkDestroySwapchainKHR)
	DEV(swapchainImages, vkGetSwapchainImagesKHR)
	DEV(acquire, vkAcquireNextImageKHR)
	DEV(present, vkQueuePresentKHR)
	DEV(cmdBarrier, vkCmdPipelineBarrier)
	DEV(cmdCopy, vkCmdCopyBufferToImage)
	DEV(createFence, vkCreateFence)
	DEV(destroyFence, vkDestroyFence)
	DEV(waitFences, vkWaitForFences)
	DEV(resetFences, vkResetFences)
#undef INST
#undef DEV
	if (createXlib == NULL || p->destroySurface == NULL || p->surfaceSupport == NULL ||
		p->surfaceCaps == NULL || p->surfaceFormats == NULL || p->createSwapchain == NULL ||
		p->destroySwapchain == NULL || p->swapchainImages == NULL || p->acquire == NULL ||
		p->present == NULL || p->cmdBarrier == NULL || p->cmdCopy == NULL || p->createFence == NULL ||
		p->destroyFence == NULL || p->waitFences == NULL || p->resetFences == NULL) {
		return VK_ERROR_EXTENSION_NOT_PRESENT;
	}

	*what = "vkCreateXlibSurfaceKHR";
	NvXlibSurfaceCreateInfo si = {0};
	si.sType = VK_STRUCTURE_TYPE_XLIB_SURFACE_CREATE_INFO_KHR;
	si.dpy = dpy;
	si.window = window;
	VkResult r = createXlib(instance, &si, NULL, &p->surface);
	if (r != VK_SUCCESS) {
		p->surface = 0;
		return r;
	}
	*what = "vkGetPhysicalDeviceSurfaceSupportKHR";
	VkBool32 ok = VK_FALSE;
	r = p->surfaceSupport(pd, family, p->surface, &ok);
	if (r != VK_SUCCESS) {
		nv_present_destroy(p);
		return r;
	}
	*supported = ok == VK_TRUE;
	*what = "create the frame's command buffer";
	r = nv_create_cmd(dev, family, &p->cmd);
	if (r != VK_SUCCESS) {
		nv_present_destroy(p);
		return r;
	}
	VkFenceCreateInfo fi = {0};
	fi.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
	r = p->createFence(dev, &fi, NULL, &p->acquired);
	if (r != VK_SUCCESS) {
		p->acquired = 0;
		nv_present_destroy(p);
		return r;
	}
	*what = "";
	return VK_SUCCESS;
}

static int usable_format(VkFormat f) {
	return f == VK_FORMAT_B8G8R8A8_UNORM || f == VK_FORMAT_B8G8R8A8_SRGB ||
		f == VK_FORMAT_R8G8B8A8_UNORM || f == VK_FORMAT_R8G8B8A8_SRGB;
}

VkResult nv_present_swapchain(NvPresent *p, uint32_t w, uint32_t h) {
	VkSurfaceCapabilitiesKHR caps;
	VkResult r = p->surfaceCaps(p->pd, p->surface, &caps);
	if (r != VK_SUCCESS) {
		return r;
	}
	if (!(caps.supportedUsageFlags & VK_IMAGE_USAGE_TRANSFER_DST_BIT)) {
		return VK_ERROR_FORMAT_NOT_SUPPORTED;
	}
	uint32_t n = 0;
	r = p->surfaceFormats(p->pd, p->surface, &n, NULL);
	if (r != VK_SUCCESS) {
		return r;
	}
	VkSurfaceFormatKHR *fs = calloc(n ? n : 1, sizeof *fs);
	if (fs == NULL) {
		return VK_ERROR_OUT_OF_HOST_MEMORY;
	}
	r = p->surfaceFormats(p->pd, p->surface, &n, fs);
	if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
		free(fs);
		return r;
	}
	// The bytes are copied as they are, so UNORM is wanted (no sRGB
	// re-encoding anywhere); an sRGB format shows the same bytes too.
	int pick = -1;
	for (uint32_t i = 0; i < n; i++) {
		if (!usable_format(fs[i].format)) {
			continue;
		}
		if (pick < 0 || (fs[i].format == VK_FORMAT_B8G8R8A8_UNORM || fs[i].format == VK_FORMAT_R8G8B8A8_UNORM)) {
			pick = (int)i;
		}
	}
	if (pick < 0) {
		free(fs);
		return VK_ERROR_FORMAT_NOT_SUPPORTED;
	}
	VkSurfaceFormatKHR chosen = fs[pick];
	free(fs);

	VkExtent2D ext = caps.currentExtent;
	if (ext.width == UINT32_MAX) {
		// The window takes the swapchain's size.
		ext.width = w < caps.minImageExtent.width ? caps.minImageExtent.width : w;
		ext.width = ext.width > caps.maxImageExtent.width ? caps.maxImageExtent.width : ext.width;
		ext.height = h < caps.minImageExtent.height ? caps.minImageExtent.height : h;
		ext.height = ext.height > caps.maxImageExtent.height ? caps.maxImageExtent.height : ext.height;
	}
	if (ext.width == 0 || ext.height == 0) {
		return VK_ERROR_OUT_OF_DATE_KHR; // minimized: nothing to show
	}
	uint32_t count = caps.minImageCount < 2 ? 2 : caps.minImageCount;
	if (caps.maxImageCount > 0 && count > caps.maxImageCount) {
		count = caps.maxImageCount;
	}
	VkCompositeAlphaFlagBitsKHR alpha = VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR;
	if (!(caps.supportedCompositeAlpha & alpha)) {
		for (uint32_t bit = 1; bit <= VK_COMPOSITE_ALPHA_INHERIT_BIT_KHR; bit <<= 1) {
			if (caps.supportedCompositeAlpha & bit) {
				alpha = (VkCompositeAlphaFlagBitsKHR)bit;
				break;
			}
		}
	}

	VkSwapchainCreateInfoKHR ci = {0};
	ci.sType = VK_STRUCTURE_TYPE_SWAPCHAIN_CREATE_INFO_KHR;
	ci.surface = p->surface;
	ci.minImageCount = count;
	ci.imageFormat = chosen.format;
	ci.imageColorSpace = chosen.colorSpace;
	ci.imageExtent = ext;
	ci.imageArrayLayers = 1;
	ci.imageUsage = VK_IMAGE_USAGE_TRANSFER_DST_BIT;
	ci.imageSharingMode = VK_SHARING_MODE_EXCLUSIVE;
	ci.preTransform = caps.currentTransform;
	ci.compositeAlpha = alpha;
	ci.presentMode = VK_PRESENT_MODE_FIFO_KHR; // the one mode every driver has
	ci.clipped = VK_TRUE;
	ci.oldSwapchain = p->swapchain;
	VkSwapchainKHR sc = 0;
	r = p->createSwapchain(p->dev, &ci, NULL, &sc);
	if (p->swapchain != 0) {
		p->destroySwapchain(p->dev, p->swapchain, NULL);
		p->swapchain = 0;
		p->imageCount = 0;
	}
	if (r != VK_SUCCESS) {
		return r;
	}
	p->swapchain = sc;
	uint32_t ni = 0;
	r = p->swapchainImages(p->dev, sc, &ni, NULL);
	if (r == VK_SUCCESS && ni > NV_MAX_SWAP_IMAGES) {
		r = VK_ERROR_TOO_MANY_OBJECTS;
	}
	if (r == VK_SUCCESS) {
		r = p->swapchainImages(p->dev, sc, &ni, p->images);
	}
	if (r != VK_SUCCESS) {
		p->destroySwapchain(p->dev, sc, NULL);
		p->swapchain = 0;
		return r;
	}
	p->imageCount = ni;
	p->format = chosen.format;
	p->width = ext.width;
	p->height = ext.height;
	return VK_SUCCESS;
}

VkResult nv_present_acquire(NvPresent *p, uint64_t timeoutNs, uint32_t *index) {
	VkResult r = p->acquire(p->dev, p->swapchain, timeoutNs, 0, p->acquired, index);
	if (r != VK_SUCCESS && r != VK_SUBOPTIMAL_KHR) {
		return r; // the fence is signalled only when an image was acquired
	}
	VkResult w = p->waitFences(p->dev, 1, &p->acquired, VK_TRUE, timeoutNs);
	if (w != VK_SUCCESS) {
		return w;
	}
	w = p->resetFences(p->dev, 1, &p->acquired);
	return w != VK_SUCCESS ? w : r;
}

VkResult nv_present_record(NvPresent *p, uint32_t index, VkBuffer src) {
	VkResult r = nv_begin(p->cmd.cb, 1);
	if (r != VK_SUCCESS) {
		return r;
	}
	// The compute that wrote src ran in an earlier submission.
	VkMemoryBarrier mb = {0};
	mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
	mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
	mb.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
	VkImageMemoryBarrier ib = {0};
	ib.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER;
	ib.srcAccessMask = 0;
	ib.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
	ib.oldLayout = VK_IMAGE_LAYOUT_UNDEFINED; // the whole image is overwritten
	ib.newLayout = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL;
	ib.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
	ib.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
	ib.image = p->images[index];
	ib.subresourceRange.aspectMask = VK_IMAGE_ASPECT_COLOR_BIT;
	ib.subresourceRange.levelCount = 1;
	ib.subresourceRange.layerCount = 1;
	p->cmdBarrier(p->cmd.cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
		VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 1, &ib);

	VkBufferImageCopy region = {0};
	region.imageSubresource.aspectMask = VK_IMAGE_ASPECT_COLOR_BIT;
	region.imageSubresource.layerCount = 1;
	region.imageExtent.width = p->width;
	region.imageExtent.height = p->height;
	region.imageExtent.depth = 1;
	p->cmdCopy(p->cmd.cb, src, p->images[index], VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 1, &region);

	ib.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
	ib.dstAccessMask = 0; // presentation needs no access mask; the fence wait orders it
	ib.oldLayout = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL;
	ib.newLayout = VK_IMAGE_LAYOUT_PRESENT_SRC_KHR;
	p->cmdBarrier(p->cmd.cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, 0,
		0, NULL, 0, NULL, 1, &ib);
	return nv_end(p->cmd.cb);
}

VkResult nv_present_queue(NvPresent *p, VkQueue q, uint32_t index) {
	// No wait semaphore: Go waited for the copy's fence before presenting.
	VkPresentInfoKHR pi = {0};
	pi.sType = VK_STRUCTURE_TYPE_PRESENT_INFO_KHR;
	pi.swapchainCount = 1;
	pi.pSwapchains = &p->swapchain;
	pi.pImageIndices = &index;
	return p->present(q, &pi);
}

void nv_present_destroy(NvPresent *p) {
	if (p->swapchain != 0) {
		p->destroySwapchain(p->dev, p->swapchain, NULL);
	}
	if (p->acquired != 0) {
		p->destroyFence(p->dev, p->acquired, NULL);
	}
	nv_destroy_cmd(p->dev, &p->cmd);
	if (p->surface != 0) {
		p->destroySurface(p->instance, p->surface, NULL);
	}
	memset(p, 0, sizeof *p);
}
