package store

import "sync"

// Wakes hands a coalesced, never-blocking signal to every listener: the
// rest-hook workers and the websocket channel each follow DeliveryWake, and
// one must not swallow the other's wake-up. The zero value is ready.
type Wakes struct {
	mu        sync.Mutex
	listeners []chan struct{}
}

// Listen returns a new channel that receives after each Signal (coalesced:
// at most one signal waits).
func (w *Wakes) Listen() <-chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.listeners = append(w.listeners, ch)
	w.mu.Unlock()
	return ch
}

// Signal wakes every listener without waiting for any.
func (w *Wakes) Signal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.listeners {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
