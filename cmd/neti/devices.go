package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/neti-project/neti/vk"
)

func runDevices(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices", "[--json]", stderr)
	asJSON := fs.Bool("json", false, "print the device list as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	devs, err := vk.ListDevices()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(devs)
	}
	f16off := vk.F16Disabled()
	for _, d := range devs {
		mark := " "
		if d.Default {
			mark = "*"
		}
		fmt.Fprintf(stdout, "%s %d: %s\n", mark, d.Index, d.Name)
		fmt.Fprintf(stdout, "    type %s, driver %s %s, Vulkan %s\n", d.Type, d.Driver, d.DriverInfo, d.APIVersion)
		fmt.Fprintf(stdout, "    memory %s (largest device-local heap), max allocation %s, max binding %s%s\n",
			bytesStr(d.HeapBytes), bytesStr(d.MaxAllocation), bytesStr(d.MaxStorageBufferRange), unified(d.UnifiedMemory))
		fmt.Fprintf(stdout, "    subgroup %d (%s), shared memory %s, max workgroup %d invocations\n",
			d.SubgroupSize, strings.Join(d.SubgroupOps, " "), bytesStr(uint64(d.MaxSharedMemory)), d.MaxWorkgroupInvocations)
		fp16 := "no"
		switch {
		case d.Float16 && d.Storage16 && f16off:
			fp16 = "available, disabled by NETI_DISABLE_F16=1"
		case d.Float16 && d.Storage16:
			fp16 = "yes: weights, and on GPUs the activations when generating, stored as fp16; math and accumulation in fp32 (--no-half or NETI_DISABLE_F16=1: all fp32)"
		case d.Float16 || d.Storage16:
			fp16 = fmt.Sprintf("partial (arithmetic %v, 16-bit storage %v): not used, weights stay fp32", d.Float16, d.Storage16)
		}
		fmt.Fprintf(stdout, "    fp16: %s\n", fp16)
		coop := "no"
		if len(d.CoopMatrix) > 0 {
			coop = strings.Join(d.CoopMatrix, "; ")
		}
		fmt.Fprintf(stdout, "    cooperative matrix: %s\n", coop)
		if d.Unsupported != "" {
			fmt.Fprintf(stdout, "    unsupported: %s\n", d.Unsupported)
		}
	}
	fmt.Fprintln(stdout, "\n* = default (choose another with --device INDEX|NAME or NETI_DEVICE)")
	return nil
}

func unified(u bool) string {
	if u {
		return ", unified with the host"
	}
	return ""
}

func bytesStr(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
