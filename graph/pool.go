package graph

import (
	"fmt"
	"sort"
)

// pool plans offsets in one or more arenas (each becomes one device buffer,
// so no tensor straddles two allocations). Freed ranges are reused
// first-fit with coalescing.
type pool struct {
	cap, align int64
	arenas     []*arena
	placed     map[int]placement
	freed      map[int]bool
}

type arena struct {
	high  int64
	holes []hole // sorted by offset
}

type hole struct{ off, size int64 }

type placement struct {
	arena     int
	off, size int64
}

func newPool(capacity, align int64) *pool {
	return &pool{cap: capacity, align: align, placed: map[int]placement{}, freed: map[int]bool{}}
}

func (pl *pool) roundUp(n int64) int64 { return (n + pl.align - 1) / pl.align * pl.align }

func (pl *pool) alloc(id int, size int64) (placement, error) {
	size = pl.roundUp(max(size, 4))
	if size > pl.cap {
		return placement{}, fmt.Errorf("needs %d bytes, more than one device allocation allows (%d)", size, pl.cap)
	}
	best, bestArena, bestHole := int64(-1), -1, -1
	for ai, a := range pl.arenas {
		for hi, h := range a.holes {
			if h.size >= size && (best < 0 || h.size < best) {
				best, bestArena, bestHole = h.size, ai, hi
			}
		}
	}
	var pos placement
	switch {
	case bestArena >= 0:
		a := pl.arenas[bestArena]
		h := a.holes[bestHole]
		pos = placement{bestArena, h.off, size}
		if h.size == size {
			a.holes = append(a.holes[:bestHole], a.holes[bestHole+1:]...)
		} else {
			a.holes[bestHole] = hole{h.off + size, h.size - size}
		}
	default:
		ai := -1
		for i, a := range pl.arenas {
			if a.high+size <= pl.cap {
				ai = i
				break
			}
		}
		if ai < 0 {
			pl.arenas = append(pl.arenas, &arena{})
			ai = len(pl.arenas) - 1
		}
		a := pl.arenas[ai]
		// A hole touching the high-water mark grows instead of leaving a gap.
		if n := len(a.holes); n > 0 && a.holes[n-1].off+a.holes[n-1].size == a.high && a.holes[n-1].off+size <= pl.cap {
			h := a.holes[n-1]
			a.holes = a.holes[:n-1]
			pos = placement{ai, h.off, size}
			a.high = h.off + size
		} else {
			pos = placement{ai, a.high, size}
			a.high += size
		}
	}
	pl.placed[id] = pos
	return pos, nil
}

func (pl *pool) free(id int) {
	pos, ok := pl.placed[id]
	if !ok || pl.freed[id] {
		return
	}
	pl.freed[id] = true
	a := pl.arenas[pos.arena]
	a.holes = append(a.holes, hole{pos.off, pos.size})
	sort.Slice(a.holes, func(i, j int) bool { return a.holes[i].off < a.holes[j].off })
	merged := a.holes[:1]
	for _, h := range a.holes[1:] {
		last := &merged[len(merged)-1]
		if last.off+last.size == h.off {
			last.size += h.size
		} else {
			merged = append(merged, h)
		}
	}
	a.holes = merged
}

func (pl *pool) total() int64 {
	var t int64
	for _, a := range pl.arenas {
		t += a.high
	}
	return t
}
