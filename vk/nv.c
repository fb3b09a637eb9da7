// Implementation of nv.h. Every function is straight-line: it fills
// create-info structs on the C stack, calls Vulkan once or twice and cleans up
// on failure. Policy (which device, which memory type, argument checks) lives
// in Go.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nv.h"
#include "_cgo_export.h"

// Core entry points, taken from the loader with dlsym. The loader exports
// every core command as a trampoline that dispatches on the instance or
// device handle, so one table serves all instances and devices (with or
// without layers). Extension commands are fetched per instance instead.
#define NV_FUNCS(X) \
	X(vkGetInstanceProcAddr) \
	X(vkGetDeviceProcAddr) \
	X(vkCreateInstance) \
	X(vkEnumerateInstanceLayerProperties) \
	X(vkEnumerateInstanceExtensionProperties) \
	X(vkEnumerateInstanceVersion) \
	X(vkDestroyInstance) \
	X(vkEnumeratePhysicalDevices) \
	X(vkGetPhysicalDeviceProperties) \
	X(vkGetPhysicalDeviceProperties2) \
	X(vkGetPhysicalDeviceFeatures2) \
	X(vkGetPhysicalDeviceMemoryProperties) \
	X(vkGetPhysicalDeviceQueueFamilyProperties) \
	X(vkEnumerateDeviceExtensionProperties) \
	X(vkCreateDevice) \
	X(vkDestroyDevice) \
	X(vkGetDeviceQueue) \
	X(vkDeviceWaitIdle) \
	X(vkQueueSubmit) \
	X(vkCreateBuffer) \
	X(vkDestroyBuffer) \
	X(vkGetBufferMemoryRequirements) \
	X(vkAllocateMemory) \
	X(vkFreeMemory) \
	X(vkBindBufferMemory) \
	X(vkMapMemory) \
	X(vkUnmapMemory) \
	X(vkCreateShaderModule) \
	X(vkDestroyShaderModule) \
	X(vkCreateDescriptorSetLayout) \
	X(vkDestroyDescriptorSetLayout) \
	X(vkCreatePipelineLayout) \
	X(vkDestroyPipelineLayout) \
	X(vkCreateComputePipelines) \
	X(vkDestroyPipeline) \
	X(vkCreatePipelineCache) \
	X(vkDestroyPipelineCache) \
	X(vkGetPipelineCacheData) \
	X(vkCreateDescriptorPool) \
	X(vkDestroyDescriptorPool) \
	X(vkAllocateDescriptorSets) \
	X(vkUpdateDescriptorSets) \
	X(vkCreateCommandPool) \
	X(vkDestroyCommandPool) \
	X(vkAllocateCommandBuffers) \
	X(vkBeginCommandBuffer) \
	X(vkEndCommandBuffer) \
	X(vkCmdBindPipeline) \
	X(vkCmdBindDescriptorSets) \
	X(vkCmdPushConstants) \
	X(vkCmdDispatch) \
	X(vkCmdPipelineBarrier) \
	X(vkCmdCopyBuffer) \
	X(vkCmdFillBuffer) \
	X(vkCmdWriteTimestamp) \
	X(vkCmdResetQueryPool) \
	X(vkCreateQueryPool) \
	X(vkDestroyQueryPool) \
	X(vkGetQueryPoolResults) \
	X(vkCreateFence) \
	X(vkDestroyFence) \
	X(vkWaitForFences) \
	X(vkResetFences)

static struct {
	void *lib;
#define NV_FIELD(name) PFN_##name name;
	NV_FUNCS(NV_FIELD)
#undef NV_FIELD
} fn;

int nv_load(const char *libname, char *err, size_t errlen) {
	if (fn.lib != NULL) {
		return 0;
	}
	void *lib = dlopen(libname, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return 1;
	}
#define NV_SYM(name) \
	fn.name = (PFN_##name)dlsym(lib, #name); \
	if (fn.name == NULL) { \
		snprintf(err, errlen, "%s has no symbol %s (Vulkan loader older than 1.1?)", libname, #name); \
		memset(&fn, 0, sizeof fn); \
		dlclose(lib); \
		return 2; \
	}
	NV_FUNCS(NV_SYM)
#undef NV_SYM
	fn.lib = lib;
	return 0;
}

int nv_loaded(void) { return fn.lib != NULL; }

uint32_t nv_instance_version(void) {
	uint32_t v = VK_API_VERSION_1_0;
	if (fn.vkEnumerateInstanceVersion(&v) != VK_SUCCESS) {
		return VK_API_VERSION_1_0;
	}
	return v;
}

int nv_has_layer(const char *layer) {
	uint32_t n = 0;
	if (fn.vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) {
		return 0;
	}
	VkLayerProperties *p = calloc(n, sizeof *p);
	if (p == NULL) {
		return 0;
	}
	int found = 0;
	if (fn.vkEnumerateInstanceLayerProperties(&n, p) >= 0) {
		for (uint32_t i = 0; i < n; i++) {
			if (strcmp(p[i].layerName, layer) == 0) {
				found = 1;
			}
		}
	}
	free(p);
	return found;
}

int nv_has_instance_ext(const char *layer, const char *ext) {
	uint32_t n = 0;
	if (fn.vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0) {
		return 0;
	}
	VkExtensionProperties *p = calloc(n, sizeof *p);
	if (p == NULL) {
		return 0;
	}
	int found = 0;
	if (fn.vkEnumerateInstanceExtensionProperties(layer, &n, p) >= 0) {
		for (uint32_t i = 0; i < n; i++) {
			if (strcmp(p[i].extensionName, ext) == 0) {
				found = 1;
			}
		}
	}
	free(p);
	return found;
}

static int has_device_ext(VkPhysicalDevice pd, const char *ext) {
	uint32_t n = 0;
	if (fn.vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0) {
		return 0;
	}
	VkExtensionProperties *p = calloc(n, sizeof *p);
	if (p == NULL) {
		return 0;
	}
	int found = 0;
	if (fn.vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) >= 0) {
		for (uint32_t i = 0; i < n; i++) {
			if (strcmp(p[i].extensionName, ext) == 0) {
				found = 1;
			}
		}
	}
	free(p);
	return found;
}

static VkBool32 VKAPI_PTR nv_debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
	VkDebugUtilsMessageTypeFlagsEXT types, const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
	(void)types;
	netiVkDebugMessage((uintptr_t)user, (int)severity,
		(char *)(data && data->pMessageIdName ? data->pMessageIdName : ""),
		(char *)(data && data->pMessage ? data->pMessage : ""));
	return VK_FALSE; // never abort the call that triggered the message
}

static void messenger_info(VkDebugUtilsMessengerCreateInfoEXT *mi, uintptr_t sink) {
	memset(mi, 0, sizeof *mi);
	mi->sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
	mi->messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
		VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
	mi->messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
		VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
		VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
	mi->pfnUserCallback = nv_debug_callback;
	mi->pUserData = (void *)sink;
}

VkResult nv_create_instance(int validation, int portability, int present, uintptr_t sink, NvInstance *out) {
	memset(out, 0, sizeof *out);
	VkApplicationInfo app = {0};
	app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
	app.pApplicationName = "neti";
	app.pEngineName = "neti";
	app.apiVersion = VK_API_VERSION_1_2;

	const char *layers[1];
	const char *exts[4];
	uint32_t nlayers = 0, nexts = 0;
	VkInstanceCreateInfo ci = {0};
	ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
	ci.pApplicationInfo = &app;
	// The messenger in pNext also reports problems of vkCreateInstance and
	// vkDestroyInstance themselves.
	VkDebugUtilsMessengerCreateInfoEXT mi;
	if (validation) {
		layers[nlayers++] = "VK_LAYER_KHRONOS_validation";
		exts[nexts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
		messenger_info(&mi, sink);
		ci.pNext = &mi;
	}
	if (portability) {
		exts[nexts++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
		ci.flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
	}
	if (present) {
		// Go checked that both are there; asked for only by a preview
		// window, so headless use never depends on window-system support.
		exts[nexts++] = VK_KHR_SURFACE_EXTENSION_NAME;
		exts[nexts++] = "VK_KHR_xlib_surface";
	}
	ci.enabledLayerCount = nlayers;
	ci.ppEnabledLayerNames = layers;
	ci.enabledExtensionCount = nexts;
	ci.ppEnabledExtensionNames = exts;
	VkResult r = fn.vkCreateInstance(&ci, NULL, &out->instance);
	if (r != VK_SUCCESS) {
		out->instance = NULL;
		return r;
	}
	if (validation) {
		PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
			fn.vkGetInstanceProcAddr(out->instance, "vkCreateDebugUtilsMessengerEXT");
		out->destroyMessenger = (PFN_vkDestroyDebugUtilsMessengerEXT)
			fn.vkGetInstanceProcAddr(out->instance, "vkDestroyDebugUtilsMessengerEXT");
		if (create == NULL || out->destroyMessenger == NULL) {
			fn.vkDestroyInstance(out->instance, NULL);
			out->instance = NULL;
			return VK_ERROR_EXTENSION_NOT_PRESENT;
		}
		r = create(out->instance, &mi, NULL, &out->messenger);
		if (r != VK_SUCCESS) {
			fn.vkDestroyInstance(out->instance, NULL);
			out->instance = NULL;
			return r;
		}
	}
	out->coopProps = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)
		fn.vkGetInstanceProcAddr(out->instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
	return VK_SUCCESS;
}

void nv_destroy_instance(NvInstance *in) {
	if (in->instance == NULL) {
		return;
	}
	if (in->messenger != 0 && in->destroyMessenger != NULL) {
		in->destroyMessenger(in->instance, in->messenger, NULL);
	}
	fn.vkDestroyInstance(in->instance, NULL);
	memset(in, 0, sizeof *in);
}

VkResult nv_enumerate_devices(NvInstance *in, uint32_t *count, VkPhysicalDevice *out) {
	return fn.vkEnumeratePhysicalDevices(in->instance, count, out);
}

VkResult nv_query_device(NvInstance *in, VkPhysicalDevice pd, NvDeviceInfo *info) {
	memset(info, 0, sizeof *info);
	fn.vkGetPhysicalDeviceProperties(pd, &info->props);
	fn.vkGetPhysicalDeviceMemoryProperties(pd, &info->mem);

	uint32_t nq = 0;
	fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
	info->queueFamily = UINT32_MAX;
	if (nq > 0) {
		VkQueueFamilyProperties *q = calloc(nq, sizeof *q);
		if (q == NULL) {
			return VK_ERROR_OUT_OF_HOST_MEMORY;
		}
		fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, q);
		for (uint32_t i = 0; i < nq; i++) {
			if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0) {
				continue;
			}
			if (info->queueFamily == UINT32_MAX ||
				(info->timestampBits == 0 && q[i].timestampValidBits > 0)) {
				info->queueFamily = i;
				info->timestampBits = q[i].timestampValidBits;
			}
		}
		free(q);
	}

	uint32_t api = info->props.apiVersion;
	if (VK_API_VERSION_MAJOR(api) == 1 && VK_API_VERSION_MINOR(api) < 1) {
		return VK_SUCCESS; // Go refuses 1.0 devices; the basics above name them
	}
	int ge12 = VK_API_VERSION_MAJOR(api) > 1 || VK_API_VERSION_MINOR(api) >= 2;
	// The instance asks for Vulkan 1.2, so 1.3 core features count only
	// through their extensions (the validation layer holds us to that).
	info->hasDriverProps = ge12 || has_device_ext(pd, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME);
	info->hasMaint4 = has_device_ext(pd, VK_KHR_MAINTENANCE_4_EXTENSION_NAME);
	info->hasFloat16Ext = has_device_ext(pd, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
	info->hasPortability = has_device_ext(pd, "VK_KHR_portability_subset");
	info->hasFeedback = has_device_ext(pd, VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME);
	info->hasSwapchain = has_device_ext(pd, VK_KHR_SWAPCHAIN_EXTENSION_NAME);
	int coopExt = in->coopProps != NULL && has_device_ext(pd, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);

	VkPhysicalDeviceProperties2 p2 = {0};
	p2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
	info->subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
	info->id.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES;
	info->maint3.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES;
	info->driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
	info->maint4.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES;
	p2.pNext = &info->subgroup;
	info->subgroup.pNext = &info->id;
	info->id.pNext = &info->maint3;
	void **tail = &info->maint3.pNext;
	if (info->hasDriverProps) {
		*tail = &info->driver;
		tail = &info->driver.pNext;
	}
	if (info->hasMaint4) {
		*tail = &info->maint4;
		tail = &info->maint4.pNext;
	}
	fn.vkGetPhysicalDeviceProperties2(pd, &p2);
	info->props = p2.properties;

	VkPhysicalDeviceFeatures2 f2 = {0};
	f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
	info->s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
	info->f16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
	VkPhysicalDeviceCooperativeMatrixFeaturesKHR coopf = {0};
	coopf.sType = NV_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR;
	f2.pNext = &info->s16;
	tail = &info->s16.pNext;
	if (ge12 || info->hasFloat16Ext) {
		*tail = &info->f16;
		tail = &info->f16.pNext;
	}
	if (coopExt) {
		*tail = &coopf;
		tail = &coopf.pNext;
	}
	fn.vkGetPhysicalDeviceFeatures2(pd, &f2);

	if (coopExt && coopf.cooperativeMatrix) {
		info->hasCoop = 1;
		uint32_t n = 0;
		if (in->coopProps(pd, &n, NULL) == VK_SUCCESS && n > 0) {
			if (n > NV_MAX_COOP) {
				n = NV_MAX_COOP;
			}
			for (uint32_t i = 0; i < n; i++) {
				info->coop[i].sType = NV_STYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
				info->coop[i].pNext = NULL;
			}
			VkResult r = in->coopProps(pd, &n, info->coop);
			if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
				info->coopCount = n;
			}
		}
	}

	info->subgroup.pNext = NULL;
	info->id.pNext = NULL;
	info->maint3.pNext = NULL;
	info->driver.pNext = NULL;
	info->maint4.pNext = NULL;
	info->s16.pNext = NULL;
	info->f16.pNext = NULL;
	return VK_SUCCESS;
}

VkResult nv_create_device(VkPhysicalDevice pd, const NvDeviceInfo *info, int f16, int coop,
	int swapchain, VkDevice *dev, VkQueue *queue) {
	float priority = 1.0f;
	VkDeviceQueueCreateInfo qi = {0};
	qi.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
	qi.queueFamilyIndex = info->queueFamily;
	qi.queueCount = 1;
	qi.pQueuePriorities = &priority;

	const char *exts[8];
	uint32_t nexts = 0;
	void *chain = NULL;

	uint32_t api = info->props.apiVersion;
	int ge12 = VK_API_VERSION_MAJOR(api) > 1 || VK_API_VERSION_MINOR(api) >= 2;
	VkPhysicalDevice16BitStorageFeatures s16 = {0};
	VkPhysicalDeviceShaderFloat16Int8Features f16f = {0};
	if (f16) {
		s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
		s16.storageBuffer16BitAccess = VK_TRUE;
		f16f.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
		f16f.shaderFloat16 = VK_TRUE;
		f16f.pNext = &s16;
		chain = &f16f;
		if (!ge12) {
			exts[nexts++] = VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME;
		}
	}
	VkPhysicalDeviceCooperativeMatrixFeaturesKHR coopf = {0};
	if (coop) {
		coopf.sType = NV_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR;
		coopf.cooperativeMatrix = VK_TRUE;
		coopf.pNext = chain;
		chain = &coopf;
		exts[nexts++] = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
	}
	if (info->hasPortability) {
		exts[nexts++] = "VK_KHR_portability_subset";
	}
	if (info->hasFeedback) {
		exts[nexts++] = VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME;
	}
	if (swapchain) {
		exts[nexts++] = VK_KHR_SWAPCHAIN_EXTENSION_NAME;
	}

	VkDeviceCreateInfo ci = {0};
	ci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
	ci.pNext = chain;
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &qi;
	ci.enabledExtensionCount = nexts;
	ci.ppEnabledExtensionNames = exts;
	VkResult r = fn.vkCreateDevice(pd, &ci, NULL, dev);
	if (r != VK_SUCCESS) {
		*dev = NULL;
		return r;
	}
	fn.vkGetDeviceQueue(*dev, info->queueFamily, 0, queue);
	return VK_SUCCESS;
}

void nv_destroy_device(VkDevice dev) { fn.vkDestroyDevice(dev, NULL); }

VkResult nv_device_wait_idle(VkDevice dev) { return fn.vkDeviceWaitIdle(dev); }

VkResult nv_create_buffer(VkDevice dev, VkDeviceSize size, VkBuffer *buf, VkMemoryRequirements *req) {
	VkBufferCreateInfo ci = {0};
	ci.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
	ci.size = size;
	ci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
		VK_BUFFER_USAGE_TRANSFER_DST_BIT;
	ci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
	VkResult r = fn.vkCreateBuffer(dev, &ci, NULL, buf);
	if (r != VK_SUCCESS) {
		*buf = 0;
		return r;
	}
	fn.vkGetBufferMemoryRequirements(dev, *buf, req);
	return VK_SUCCESS;
}

VkResult nv_alloc_bind(VkDevice dev, VkBuffer buf, VkDeviceSize size, uint32_t type,
	VkDeviceMemory *mem, void **mapped) {
	VkMemoryAllocateInfo ai = {0};
	ai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
	ai.allocationSize = size;
	ai.memoryTypeIndex = type;
	VkResult r = fn.vkAllocateMemory(dev, &ai, NULL, mem);
	if (r != VK_SUCCESS) {
		*mem = 0;
		return r;
	}
	r = fn.vkBindBufferMemory(dev, buf, *mem, 0);
	if (r == VK_SUCCESS && mapped != NULL) {
		r = fn.vkMapMemory(dev, *mem, 0, VK_WHOLE_SIZE, 0, mapped);
	}
	if (r != VK_SUCCESS) {
		fn.vkFreeMemory(dev, *mem, NULL);
		*mem = 0;
		if (mapped != NULL) {
			*mapped = NULL;
		}
	}
	return r;
}

void nv_destroy_buffer(VkDevice dev, VkBuffer buf, VkDeviceMemory mem) {
	// Freeing mapped memory unmaps it implicitly.
	if (buf != 0) {
		fn.vkDestroyBuffer(dev, buf, NULL);
	}
	if (mem != 0) {
		fn.vkFreeMemory(dev, mem, NULL);
	}
}

VkResult nv_create_pipeline_cache(VkDevice dev, const void *data, size_t size, VkPipelineCache *cache) {
	VkPipelineCacheCreateInfo ci = {0};
	ci.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO;
	ci.initialDataSize = size;
	ci.pInitialData = size > 0 ? data : NULL;
	VkResult r = fn.vkCreatePipelineCache(dev, &ci, NULL, cache);
	if (r != VK_SUCCESS) {
		*cache = 0;
	}
	return r;
}

VkResult nv_pipeline_cache_data(VkDevice dev, VkPipelineCache cache, size_t *size, void *data) {
	return fn.vkGetPipelineCacheData(dev, cache, size, data);
}

void nv_destroy_pipeline_cache(VkDevice dev, VkPipelineCache cache) {
	if (cache != 0) {
		fn.vkDestroyPipelineCache(dev, cache, NULL);
	}
}

VkResult nv_create_kernel(VkDevice dev, VkPipelineCache cache, const uint32_t *code, size_t codeBytes,
	uint32_t bindings, uint32_t pushSize, const uint32_t *spec, const uint32_t *specIDs, uint32_t nspec, int feedback,
	NvKernel *out) {
	memset(out, 0, sizeof *out);
	VkResult r;
	VkShaderModule module = 0;
	VkDescriptorSetLayoutBinding *b = NULL;
	VkSpecializationMapEntry *entries = NULL;

	VkShaderModuleCreateInfo mi = {0};
	mi.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
	mi.codeSize = codeBytes;
	mi.pCode = code;
	r = fn.vkCreateShaderModule(dev, &mi, NULL, &module);
	if (r != VK_SUCCESS) {
		return r;
	}

	if (bindings > 0) {
		b = calloc(bindings, sizeof *b);
		if (b == NULL) {
			r = VK_ERROR_OUT_OF_HOST_MEMORY;
			goto fail;
		}
		for (uint32_t i = 0; i < bindings; i++) {
			b[i].binding = i;
			b[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
			b[i].descriptorCount = 1;
			b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
		}
	}
	VkDescriptorSetLayoutCreateInfo li = {0};
	li.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
	li.bindingCount = bindings;
	li.pBindings = b;
	r = fn.vkCreateDescriptorSetLayout(dev, &li, NULL, &out->dsl);
	if (r != VK_SUCCESS) {
		out->dsl = 0;
		goto fail;
	}

	VkPushConstantRange pr = {0};
	pr.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
	pr.offset = 0;
	pr.size = pushSize;
	VkPipelineLayoutCreateInfo pli = {0};
	pli.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
	pli.setLayoutCount = 1;
	pli.pSetLayouts = &out->dsl;
	pli.pushConstantRangeCount = pushSize > 0 ? 1 : 0;
	pli.pPushConstantRanges = pushSize > 0 ? &pr : NULL;
	r = fn.vkCreatePipelineLayout(dev, &pli, NULL, &out->layout);
	if (r != VK_SUCCESS) {
		out->layout = 0;
		goto fail;
	}

	VkSpecializationInfo si = {0};
	if (nspec > 0) {
		entries = calloc(nspec, sizeof *entries);
		if (entries == NULL) {
			r = VK_ERROR_OUT_OF_HOST_MEMORY;
			goto fail;
		}
		for (uint32_t i = 0; i < nspec; i++) {
			entries[i].constantID = specIDs != NULL ? specIDs[i] : i;
			entries[i].offset = i * 4;
			entries[i].size = 4;
		}
		si.mapEntryCount = nspec;
		si.pMapEntries = entries;
		si.dataSize = (size_t)nspec * 4;
		si.pData = spec;
	}

	VkPipelineCreationFeedback fb = {0};
	VkPipelineCreationFeedback stagefb = {0};
	VkPipelineCreationFeedbackCreateInfo fbi = {0};
	fbi.sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO;
	fbi.pPipelineCreationFeedback = &fb;
	fbi.pipelineStageCreationFeedbackCount = 1;
	fbi.pPipelineStageCreationFeedbacks = &stagefb;

	VkComputePipelineCreateInfo ci = {0};
	ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
	ci.pNext = feedback ? &fbi : NULL;
	ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
	ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
	ci.stage.module = module;
	ci.stage.pName = "main";
	ci.stage.pSpecializationInfo = nspec > 0 ? &si : NULL;
	ci.layout = out->layout;
	ci.basePipelineIndex = -1;
	r = fn.vkCreateComputePipelines(dev, cache, 1, &ci, NULL, &out->pipeline);
	if (r != VK_SUCCESS) {
		out->pipeline = 0;
		goto fail;
	}
	out->feedback = feedback ? fb.flags : 0;
	free(b);
	free(entries);
	fn.vkDestroyShaderModule(dev, module, NULL);
	return VK_SUCCESS;

fail:
	free(b);
	free(entries);
	nv_destroy_kernel(dev, out);
	fn.vkDestroyShaderModule(dev, module, NULL);
	return r;
}

void nv_destroy_kernel(VkDevice dev, NvKernel *k) {
	if (k->pipeline != 0) {
		fn.vkDestroyPipeline(dev, k->pipeline, NULL);
	}
	if (k->layout != 0) {
		fn.vkDestroyPipelineLayout(dev, k->layout, NULL);
	}
	if (k->dsl != 0) {
		fn.vkDestroyDescriptorSetLayout(dev, k->dsl, NULL);
	}
	memset(k, 0, sizeof *k);
}

VkResult nv_create_cmd(VkDevice dev, uint32_t family, NvCmd *out) {
	memset(out, 0, sizeof *out);
	VkCommandPoolCreateInfo pi = {0};
	pi.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
	pi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
	pi.queueFamilyIndex = family;
	VkResult r = fn.vkCreateCommandPool(dev, &pi, NULL, &out->pool);
	if (r != VK_SUCCESS) {
		out->pool = 0;
		return r;
	}
	VkCommandBufferAllocateInfo ai = {0};
	ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
	ai.commandPool = out->pool;
	ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
	ai.commandBufferCount = 1;
	r = fn.vkAllocateCommandBuffers(dev, &ai, &out->cb);
	if (r != VK_SUCCESS) {
		out->cb = NULL;
		nv_destroy_cmd(dev, out);
		return r;
	}
	VkFenceCreateInfo fi = {0};
	fi.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
	r = fn.vkCreateFence(dev, &fi, NULL, &out->fence);
	if (r != VK_SUCCESS) {
		out->fence = 0;
		nv_destroy_cmd(dev, out);
		return r;
	}
	return VK_SUCCESS;
}

void nv_destroy_cmd(VkDevice dev, NvCmd *c) {
	if (c->fence != 0) {
		fn.vkDestroyFence(dev, c->fence, NULL);
	}
	if (c->pool != 0) {
		// Destroying the pool frees its command buffers.
		fn.vkDestroyCommandPool(dev, c->pool, NULL);
	}
	memset(c, 0, sizeof *c);
}

VkResult nv_begin(VkCommandBuffer cb, int oneTime) {
	VkCommandBufferBeginInfo bi = {0};
	bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
	bi.flags = oneTime ? VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT : 0;
	return fn.vkBeginCommandBuffer(cb, &bi);
}

VkResult nv_end(VkCommandBuffer cb) { return fn.vkEndCommandBuffer(cb); }

void nv_cmd_barrier(VkCommandBuffer cb, VkPipelineStageFlags srcStage, VkAccessFlags srcAccess,
	VkPipelineStageFlags dstStage, VkAccessFlags dstAccess) {
	VkMemoryBarrier mb = {0};
	mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
	mb.srcAccessMask = srcAccess;
	mb.dstAccessMask = dstAccess;
	fn.vkCmdPipelineBarrier(cb, srcStage, dstStage, 0, 1, &mb, 0, NULL, 0, NULL);
}

void nv_cmd_copy(VkCommandBuffer cb, VkBuffer src, VkDeviceSize srcOff, VkBuffer dst,
	VkDeviceSize dstOff, VkDeviceSize size) {
	VkBufferCopy region = {srcOff, dstOff, size};
	fn.vkCmdCopyBuffer(cb, src, dst, 1, &region);
}

void nv_cmd_fill(VkCommandBuffer cb, VkBuffer buf, VkDeviceSize off, VkDeviceSize size, uint32_t word) {
	fn.vkCmdFillBuffer(cb, buf, off, size, word);
}

void nv_cmd_dispatch(VkCommandBuffer cb, VkPipeline pipeline, VkPipelineLayout layout, VkDescriptorSet set,
	const void *push, uint32_t pushLen, uint32_t gx, uint32_t gy, uint32_t gz) {
	fn.vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
	if (set != 0) {
		fn.vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &set, 0, NULL);
	}
	if (pushLen > 0) {
		// The driver copies push constants at record time.
		fn.vkCmdPushConstants(cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, pushLen, push);
	}
	fn.vkCmdDispatch(cb, gx, gy, gz);
}

void nv_cmd_reset_queries(VkCommandBuffer cb, VkQueryPool pool, uint32_t first, uint32_t count) {
	fn.vkCmdResetQueryPool(cb, pool, first, count);
}

void nv_cmd_timestamp(VkCommandBuffer cb, VkQueryPool pool, uint32_t query) {
	fn.vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool, query);
}

VkResult nv_submit(VkQueue q, VkCommandBuffer cb, VkFence fence) {
	VkSubmitInfo si = {0};
	si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
	si.commandBufferCount = 1;
	si.pCommandBuffers = &cb;
	return fn.vkQueueSubmit(q, 1, &si, fence);
}

VkResult nv_wait_fence(VkDevice dev, VkFence fence, uint64_t timeoutNs) {
	return fn.vkWaitForFences(dev, 1, &fence, VK_TRUE, timeoutNs);
}

VkResult nv_reset_fence(VkDevice dev, VkFence fence) { return fn.vkResetFences(dev, 1, &fence); }

VkResult nv_create_descriptor_pool(VkDevice dev, uint32_t maxSets, uint32_t descriptors, VkDescriptorPool *pool) {
	VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptors};
	VkDescriptorPoolCreateInfo ci = {0};
	ci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
	ci.maxSets = maxSets;
	ci.poolSizeCount = 1;
	ci.pPoolSizes = &ps;
	VkResult r = fn.vkCreateDescriptorPool(dev, &ci, NULL, pool);
	if (r != VK_SUCCESS) {
		*pool = 0;
	}
	return r;
}

void nv_destroy_descriptor_pool(VkDevice dev, VkDescriptorPool pool) {
	if (pool != 0) {
		fn.vkDestroyDescriptorPool(dev, pool, NULL);
	}
}

VkResult nv_alloc_set(VkDevice dev, VkDescriptorPool pool, VkDescriptorSetLayout dsl, VkDescriptorSet *set) {
	VkDescriptorSetAllocateInfo ai = {0};
	ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
	ai.descriptorPool = pool;
	ai.descriptorSetCount = 1;
	ai.pSetLayouts = &dsl;
	VkResult r = fn.vkAllocateDescriptorSets(dev, &ai, set);
	if (r != VK_SUCCESS) {
		*set = 0;
	}
	return r;
}

VkResult nv_write_set(VkDevice dev, VkDescriptorSet set, uint32_t n, const VkBuffer *bufs,
	const VkDeviceSize *offs, const VkDeviceSize *ranges) {
	if (n == 0) {
		return VK_SUCCESS;
	}
	VkDescriptorBufferInfo *bi = calloc(n, sizeof *bi);
	VkWriteDescriptorSet *w = calloc(n, sizeof *w);
	if (bi == NULL || w == NULL) {
		free(bi);
		free(w);
		return VK_ERROR_OUT_OF_HOST_MEMORY;
	}
	for (uint32_t i = 0; i < n; i++) {
		bi[i].buffer = bufs[i];
		bi[i].offset = offs[i];
		bi[i].range = ranges[i];
		w[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
		w[i].dstSet = set;
		w[i].dstBinding = i;
		w[i].descriptorCount = 1;
		w[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
		w[i].pBufferInfo = &bi[i];
	}
	fn.vkUpdateDescriptorSets(dev, n, w, 0, NULL);
	free(bi);
	free(w);
	return VK_SUCCESS;
}

VkResult nv_create_query_pool(VkDevice dev, uint32_t count, VkQueryPool *pool) {
	VkQueryPoolCreateInfo ci = {0};
	ci.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
	ci.queryType = VK_QUERY_TYPE_TIMESTAMP;
	ci.queryCount = count;
	VkResult r = fn.vkCreateQueryPool(dev, &ci, NULL, pool);
	if (r != VK_SUCCESS) {
		*pool = 0;
	}
	return r;
}

void nv_destroy_query_pool(VkDevice dev, VkQueryPool pool) {
	if (pool != 0) {
		fn.vkDestroyQueryPool(dev, pool, NULL);
	}
}

VkResult nv_query_results(VkDevice dev, VkQueryPool pool, uint32_t first, uint32_t count, uint64_t *out) {
	return fn.vkGetQueryPoolResults(dev, pool, first, count, (size_t)count * 8, out, 8,
		VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
}

PFN_vkVoidFunction nv_instance_proc(VkInstance instance, const char *name) {
	return fn.vkGetInstanceProcAddr(instance, name);
}

PFN_vkVoidFunction nv_device_proc(VkDevice dev, const char *name) {
	return fn.vkGetDeviceProcAddr(dev, name);
}
