// C side of package vk: the loader (libvulkan is opened with dlopen so a
// binary without it still starts and can say what to install), and small
// helpers that build Vulkan create-info structs and pNext chains in C memory,
// so Go never hands the driver a Go pointer that holds other Go pointers.
//
// This header holds declarations only: it is included by the preamble of a
// Go file with //export, whose preamble cgo copies into _cgo_export.h.
#ifndef NETI_VK_NV_H
#define NETI_VK_NV_H

#ifndef VK_USE_64_BIT_PTR_DEFINES
#define VK_USE_64_BIT_PTR_DEFINES 0
#endif
#define VK_NO_PROTOTYPES 1
#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

// VK_KHR_cooperative_matrix appeared in headers 1.3.255; Debian 12 ships
// 1.3.239, so the few definitions needed are spelled out here.
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_cooperative_matrix 1
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define NV_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define NV_STYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
typedef struct VkCooperativeMatrixPropertiesKHR {
	VkStructureType sType;
	void *pNext;
	uint32_t MSize;
	uint32_t NSize;
	uint32_t KSize;
	int32_t AType;
	int32_t BType;
	int32_t CType;
	int32_t ResultType;
	VkBool32 saturatingAccumulation;
	int32_t scope;
} VkCooperativeMatrixPropertiesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
	VkStructureType sType;
	void *pNext;
	VkBool32 cooperativeMatrix;
	VkBool32 cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef VkResult (VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
	VkPhysicalDevice, uint32_t *, VkCooperativeMatrixPropertiesKHR *);
#else
#define NV_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR
#define NV_STYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR
#endif

#define NV_MAX_COOP 64

// Loading. nv_load is idempotent and not thread-safe; Go calls it under a
// sync.Once. Returns 0 on success, else writes a message into err.
int nv_load(const char *libname, char *err, size_t errlen);
int nv_loaded(void);

// Instance.
typedef struct NvInstance {
	VkInstance instance;
	VkDebugUtilsMessengerEXT messenger;
	PFN_vkDestroyDebugUtilsMessengerEXT destroyMessenger;
	PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR coopProps;
} NvInstance;

uint32_t nv_instance_version(void);
int nv_has_layer(const char *layer);
int nv_has_instance_ext(const char *layer, const char *ext);
VkResult nv_create_instance(int validation, int portability, int present, uintptr_t sink, NvInstance *out);
void nv_destroy_instance(NvInstance *in);
VkResult nv_enumerate_devices(NvInstance *in, uint32_t *count, VkPhysicalDevice *out);

// Everything package vk wants to know about a physical device, as plain
// structs (pNext cleared before return).
typedef struct NvDeviceInfo {
	VkPhysicalDeviceProperties props;
	VkPhysicalDeviceSubgroupProperties subgroup;
	VkPhysicalDeviceIDProperties id;
	VkPhysicalDeviceDriverProperties driver;
	VkPhysicalDeviceMaintenance3Properties maint3;
	VkPhysicalDeviceMaintenance4Properties maint4;
	VkPhysicalDeviceShaderFloat16Int8Features f16;
	VkPhysicalDevice16BitStorageFeatures s16;
	VkPhysicalDeviceMemoryProperties mem;
	uint32_t queueFamily;    // first compute family (one with timestamps preferred); UINT32_MAX if none
	uint32_t timestampBits;  // of that family
	int hasDriverProps;
	int hasMaint4;
	int hasFloat16Ext;       // VK_KHR_shader_float16_int8 (needed below 1.2)
	int hasPortability;      // VK_KHR_portability_subset (must be enabled when present)
	int hasCoop;             // VK_KHR_cooperative_matrix with the cooperativeMatrix feature
	int hasFeedback;         // pipeline creation feedback (core 1.3 or VK_EXT_pipeline_creation_feedback)
	int hasSwapchain;        // VK_KHR_swapchain (presentation to a window)
	uint32_t coopCount;
	VkCooperativeMatrixPropertiesKHR coop[NV_MAX_COOP];
} NvDeviceInfo;

VkResult nv_query_device(NvInstance *in, VkPhysicalDevice pd, NvDeviceInfo *info);
VkResult nv_create_device(VkPhysicalDevice pd, const NvDeviceInfo *info, int f16, int coop,
	int swapchain, VkDevice *dev, VkQueue *queue);
void nv_destroy_device(VkDevice dev);
VkResult nv_device_wait_idle(VkDevice dev);

// Buffers and memory.
VkResult nv_create_buffer(VkDevice dev, VkDeviceSize size, VkBuffer *buf, VkMemoryRequirements *req);
VkResult nv_alloc_bind(VkDevice dev, VkBuffer buf, VkDeviceSize size, uint32_t type,
	VkDeviceMemory *mem, void **mapped);
void nv_destroy_buffer(VkDevice dev, VkBuffer buf, VkDeviceMemory mem);

// Kernels and the pipeline cache.
VkResult nv_create_pipeline_cache(VkDevice dev, const void *data, size_t size, VkPipelineCache *cache);
VkResult nv_pipeline_cache_data(VkDevice dev, VkPipelineCache cache, size_t *size, void *data);
void nv_destroy_pipeline_cache(VkDevice dev, VkPipelineCache cache);

typedef struct NvKernel {
	VkDescriptorSetLayout dsl;
	VkPipelineLayout layout;
	VkPipeline pipeline;
	uint32_t feedback; // VkPipelineCreationFeedbackFlags, 0 when not asked for
} NvKernel;

VkResult nv_create_kernel(VkDevice dev, VkPipelineCache cache, const uint32_t *code, size_t codeBytes,
	uint32_t bindings, uint32_t pushSize, const uint32_t *spec, const uint32_t *specIDs, uint32_t nspec, int feedback,
	NvKernel *out);
void nv_destroy_kernel(VkDevice dev, NvKernel *k);

// Command buffers.
typedef struct NvCmd {
	VkCommandPool pool;
	VkCommandBuffer cb;
	VkFence fence;
} NvCmd;

VkResult nv_create_cmd(VkDevice dev, uint32_t family, NvCmd *out);
void nv_destroy_cmd(VkDevice dev, NvCmd *c);
VkResult nv_begin(VkCommandBuffer cb, int oneTime);
VkResult nv_end(VkCommandBuffer cb);
void nv_cmd_barrier(VkCommandBuffer cb, VkPipelineStageFlags srcStage, VkAccessFlags srcAccess,
	VkPipelineStageFlags dstStage, VkAccessFlags dstAccess);
void nv_cmd_copy(VkCommandBuffer cb, VkBuffer src, VkDeviceSize srcOff, VkBuffer dst,
	VkDeviceSize dstOff, VkDeviceSize size);
void nv_cmd_fill(VkCommandBuffer cb, VkBuffer buf, VkDeviceSize off, VkDeviceSize size, uint32_t word);
void nv_cmd_dispatch(VkCommandBuffer cb, VkPipeline pipeline, VkPipelineLayout layout, VkDescriptorSet set,
	const void *push, uint32_t pushLen, uint32_t gx, uint32_t gy, uint32_t gz);
void nv_cmd_reset_queries(VkCommandBuffer cb, VkQueryPool pool, uint32_t first, uint32_t count);
void nv_cmd_timestamp(VkCommandBuffer cb, VkQueryPool pool, uint32_t query);

VkResult nv_submit(VkQueue q, VkCommandBuffer cb, VkFence fence);
VkResult nv_wait_fence(VkDevice dev, VkFence fence, uint64_t timeoutNs);
VkResult nv_reset_fence(VkDevice dev, VkFence fence);

// Descriptors and queries.
VkResult nv_create_descriptor_pool(VkDevice dev, uint32_t maxSets, uint32_t descriptors, VkDescriptorPool *pool);
void nv_destroy_descriptor_pool(VkDevice dev, VkDescriptorPool pool);
VkResult nv_alloc_set(VkDevice dev, VkDescriptorPool pool, VkDescriptorSetLayout dsl, VkDescriptorSet *set);
VkResult nv_write_set(VkDevice dev, VkDescriptorSet set, uint32_t n, const VkBuffer *bufs,
	const VkDeviceSize *offs, const VkDeviceSize *ranges);
VkResult nv_create_query_pool(VkDevice dev, uint32_t count, VkQueryPool *pool);
void nv_destroy_query_pool(VkDevice dev, VkQueryPool pool);
VkResult nv_query_results(VkDevice dev, VkQueryPool pool, uint32_t first, uint32_t count, uint64_t *out);

// Entry points by name, for the window-system (WSI) helpers in present.c:
// extension commands are not in the loader's export table.
PFN_vkVoidFunction nv_instance_proc(VkInstance instance, const char *name);
PFN_vkVoidFunction nv_device_proc(VkDevice dev, const char *name);

#endif
