package tokenizer

import "container/heap"

// byteSymbols is GPT-2/CLIP's byte-level table: the 188 printable bytes
// ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves, the other 68 become
// U+0100, U+0101, ... in increasing byte order. It makes every UTF-8 byte a
// visible, whitespace-free vocabulary symbol, so no text is ever unknown.
func byteSymbols() [256]string {
	var t [256]string
	next := rune(0x100)
	for b := range 256 {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			t[b] = string(rune(b))
		} else {
			t[b] = string(next)
			next++
		}
	}
	return t
}

// endOfWord marks the last symbol of a word in CLIP's vocabulary.
const endOfWord = "</w>"

type merge struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// candidate is an adjacent pair seen at some time; it may have gone stale
// since, so it is re-checked when it comes off the queue.
type candidate struct {
	rank, pos   int32
	left, right int32
}

type queue []candidate

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(candidate)) }
func (q *queue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}

// bpe encodes one pre-tokenized piece (non-empty) into vocabulary ids.
//
// The reference repeatedly takes the lowest-ranked adjacent pair and merges
// all its occurrences left to right; done naively that is quadratic in the
// word length, which a long run of letters would turn into a hang. Here the
// symbols form a linked list and pairs wait in a priority queue ordered by
// (rank, position): all current occurrences of the best rank are taken as one
// batch and merged left to right, skipping those an earlier merge consumed,
// which is exactly the reference order in O(n log n).
func (t *Tokenizer) bpe(piece string) []int32 {
	n := len(piece)
	ids := make([]int32, n)
	for i := range n {
		ids[i] = t.byteID[piece[i]]
	}
	ids[n-1] = t.byteEndID[piece[n-1]]
	if n == 1 {
		return ids
	}
	next := make([]int32, n) // -1 ends the list
	prev := make([]int32, n)
	alive := make([]bool, n)
	var q queue
	for i := range n {
		next[i], prev[i], alive[i] = int32(i+1), int32(i-1), true
		if i+1 < n {
			if m, ok := t.merges[pairKey(ids[i], ids[i+1])]; ok {
				q = append(q, candidate{m.rank, int32(i), ids[i], ids[i+1]})
			}
		}
	}
	next[n-1] = -1
	heap.Init(&q)
	push := func(i int32) {
		j := next[i]
		if i < 0 || j < 0 {
			return
		}
		if m, ok := t.merges[pairKey(ids[i], ids[j])]; ok {
			heap.Push(&q, candidate{m.rank, i, ids[i], ids[j]})
		}
	}
	var batch []candidate
	for q.Len() > 0 {
		rank := q[0].rank
		batch = batch[:0]
		for q.Len() > 0 && q[0].rank == rank {
			batch = append(batch, heap.Pop(&q).(candidate))
		}
		merged := t.merges[pairKey(batch[0].left, batch[0].right)].id
		for _, c := range batch {
			i := c.pos
			j := next[i]
			if !alive[i] || ids[i] != c.left || j < 0 || ids[j] != c.right {
				continue
			}
			ids[i] = merged
			alive[j] = false
			next[i] = next[j]
			if next[j] >= 0 {
				prev[next[j]] = i
			}
			// Pairs made by this merge never have this rank (the merged
			// symbol is longer than either half), so they cannot join the
			// current batch.
			if p := prev[i]; p >= 0 {
				push(p)
			}
			push(i)
		}
	}
	out := ids[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}
