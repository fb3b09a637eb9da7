package vk

// This file holds the only //export of the package. cgo copies its preamble
// into _cgo_export.h, so the preamble may contain declarations only; the C
// trampoline that calls netiVkDebugMessage lives in nv.c.

/*
#include <stdint.h>
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"sync"
)

// Message is one message of the validation layer (VK_EXT_debug_utils).
type Message struct {
	Severity string // "error", "warning", "info" or "verbose"
	ID       string // e.g. "VUID-vkCmdDispatch-None-02697"
	Text     string
}

func (m Message) String() string { return fmt.Sprintf("[%s] %s: %s", m.Severity, m.ID, m.Text) }

// maxMessages bounds the log: a loop that triggers the same validation error
// every dispatch must not grow memory without limit.
const maxMessages = 1000

// messageLog collects messages; the layer may call back from any thread.
type messageLog struct {
	mu      sync.Mutex
	msgs    []Message
	dropped int
}

func (l *messageLog) add(m Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.msgs) >= maxMessages {
		l.dropped++
		return
	}
	l.msgs = append(l.msgs, m)
}

func (l *messageLog) snapshot() []Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]Message(nil), l.msgs...)
	if l.dropped > 0 {
		out = append(out, Message{Severity: "warning", ID: "neti-vk-messages-dropped",
			Text: fmt.Sprintf("%d more messages were dropped", l.dropped)})
	}
	return out
}

func (l *messageLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs) + l.dropped
}

func (l *messageLog) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = nil
	l.dropped = 0
}

func severityName(s int) string {
	switch {
	case s&0x1000 != 0:
		return "error"
	case s&0x100 != 0:
		return "warning"
	case s&0x10 != 0:
		return "info"
	default:
		return "verbose"
	}
}

//export netiVkDebugMessage
func netiVkDebugMessage(sink C.uintptr_t, severity C.int, id, text *C.char) {
	// The handle outlives the instance (deleted after vkDestroyInstance), so
	// it is valid for every callback.
	l, ok := cgo.Handle(sink).Value().(*messageLog)
	if !ok {
		return
	}
	l.add(Message{Severity: severityName(int(severity)), ID: C.GoString(id), Text: C.GoString(text)})
}
