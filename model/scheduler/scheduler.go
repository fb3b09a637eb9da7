package scheduler

import (
	"fmt"
	"strings"
)

// Scheduler turns a model's noise (or v, or x0) prediction at one timestep
// into the latent of the next timestep.
//
// A scheduler holds per-image state (multistep history), so one value must
// not be shared by concurrent generations. Steps of the multistep samplers
// (DPM-Solver, PNDM) must be taken in order; the first step after
// SetTimesteps or Reset may start at any index (as img2img does).
type Scheduler interface {
	// Name is the canonical name New accepts.
	Name() string
	// SetTimesteps chooses n inference steps and clears the history.
	SetTimesteps(n int) error
	// Timesteps are the UNet timesteps, one per Step call, rounded to
	// integers where the sampler uses fractional ones (Euler with linspace
	// spacing); see TimestepValues.
	Timesteps() []int
	// TimestepValues are the exact timesteps to give the UNet.
	TimestepValues() []float64
	// InitNoiseSigma scales the unit-variance initial noise.
	InitNoiseSigma() float64
	// ScaleModelInput returns the UNet input for the latent x at a step
	// (a copy; only Euler changes it).
	ScaleModelInput(x []float32, stepIndex int) []float32
	// Step advances x by one step. rng draws standard normal values for the
	// ancestral samplers (Euler a, DDPM) and may be nil for the others.
	// predOriginal is the predicted denoised latent x0.
	Step(modelOutput []float32, stepIndex int, x []float32, rng func() float64) (prev, predOriginal []float32, err error)
	// Reset clears the multistep history so the scheduler can run another
	// image with the same timesteps.
	Reset()
}

type entry struct {
	aliases []string
	build   func(name string, c Config, t Tables) (Scheduler, error)
}

// registry maps every accepted name to its constructor; the first alias of
// each entry is canonical.
func registry() []entry {
	return []entry{
		{[]string{"ddim"}, newDDIM},
		{[]string{"dpm++2m", "dpmpp2m", "dpmsolver++"}, newDPM},
		{[]string{"pndm"}, newPNDM},
		{[]string{"plms"}, newPNDM},
		{[]string{"euler_a", "euler_ancestral", "euler-a"}, newEulerA},
		{[]string{"ddpm"}, newDDPM},
	}
}

// Names lists the scheduler names New accepts (canonical ones first in
// each group).
func Names() []string {
	var out []string
	for _, n := range registry() {
		out = append(out, n.aliases...)
	}
	return out
}

// New builds a scheduler by name from a config. "plms" is PNDM with
// skip_prk_steps forced on (the SD v1 default); "pndm" follows the config.
// "dpm++2m" is diffusers' DPMSolverMultistepScheduler and takes algorithm,
// order and solver type from the config (defaults: dpmsolver++, 2, midpoint).
func New(name string, c Config) (Scheduler, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	for _, n := range registry() {
		for _, a := range n.aliases {
			if a != key {
				continue
			}
			t, err := NewTables(c)
			if err != nil {
				return nil, fmt.Errorf("scheduler %s: %w", n.aliases[0], err)
			}
			s, err := n.build(n.aliases[0], c, t)
			if err != nil {
				return nil, fmt.Errorf("scheduler %s: %w", n.aliases[0], err)
			}
			return s, nil
		}
	}
	return nil, fmt.Errorf("scheduler: unknown name %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// base holds what every sampler shares: the tables and the timesteps.
type base struct {
	name   string
	cfg    Config
	tables Tables
	ts     []int
}

func (b *base) Name() string { return b.name }

func (b *base) Timesteps() []int { return append([]int(nil), b.ts...) }

func (b *base) TimestepValues() []float64 {
	out := make([]float64, len(b.ts))
	for i, t := range b.ts {
		out[i] = float64(t)
	}
	return out
}

func (b *base) InitNoiseSigma() float64 { return 1 }

func (b *base) ScaleModelInput(x []float32, stepIndex int) []float32 {
	return append([]float32(nil), x...)
}

// checkStep validates a Step call's arguments against the timesteps.
func (b *base) checkStep(modelOutput []float32, stepIndex int, x []float32) error {
	if len(b.ts) == 0 {
		return fmt.Errorf("scheduler %s: Step before SetTimesteps", b.name)
	}
	if stepIndex < 0 || stepIndex >= len(b.ts) {
		return fmt.Errorf("scheduler %s: step index %d outside [0, %d)", b.name, stepIndex, len(b.ts))
	}
	if len(x) == 0 || len(modelOutput) != len(x) {
		return fmt.Errorf("scheduler %s: model output has %d values, sample %d", b.name, len(modelOutput), len(x))
	}
	return nil
}

// order enforces that a multistep sampler's steps come one after another:
// its history would silently mix unrelated steps otherwise.
type order struct{ next int }

func (o *order) reset() { o.next = -1 }

func (o *order) check(name string, stepIndex int) error {
	if o.next >= 0 && stepIndex != o.next {
		return fmt.Errorf("scheduler %s: step index %d out of order (expected %d; call Reset to start over)", name, stepIndex, o.next)
	}
	return nil
}

func (o *order) advance(stepIndex int) { o.next = stepIndex + 1 }

// noise draws n standard normal values rounded to float32.
func noise(name string, rng func() float64, n int) ([]float32, error) {
	if rng == nil {
		return nil, fmt.Errorf("scheduler %s: ancestral step needs a random source (rng is nil)", name)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng())
	}
	return out, nil
}

// clip clamps x0 to [-r, r] in place (DDIM/DDPM clip_sample).
func clip(x []float32, r float64) {
	lo, hi := float32(-r), float32(r)
	for i, v := range x {
		x[i] = min(max(v, lo), hi)
	}
}
