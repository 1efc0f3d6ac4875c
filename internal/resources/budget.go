package resources

import (
	"context"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// DefaultMaxResponseBytes is the response budget when
// Config.MaxResponseBytes is 0.
const DefaultMaxResponseBytes = 16 << 20

// entryOverhead is what an entry adds to a response beside its resource:
// fullUrl, search or response members.
const entryOverhead = 256

// byteBudget is what is left of one response's resource bytes: a search
// page, or a whole batch or transaction response with every search and
// read in it. A search page ends where the next resource would exceed it
// (its next link continues from there); see Service.Bundle for entries.
type byteBudget struct {
	left    int64
	touched bool // something was charged: a page may no longer take its first resource regardless
}

type budgetKey struct{}

// withBudget returns ctx carrying the response budget: the one ctx already
// has (a search inside a batch shares the batch's), else a fresh one.
func (s *Service) withBudget(ctx context.Context) (context.Context, *byteBudget) {
	if b, ok := ctx.Value(budgetKey{}).(*byteBudget); ok {
		return ctx, b
	}
	b := &byteBudget{left: s.maxResponseBytes}
	return context.WithValue(ctx, budgetKey{}, b), b
}

// budgetLeft is what ctx's budget has left (0: ctx has none), for a
// store read to stop at (HistoryQuery.MaxBytes).
func budgetLeft(ctx context.Context) int64 {
	if b, ok := ctx.Value(budgetKey{}).(*byteBudget); ok {
		return max(b.left, 1)
	}
	return 0
}

// affordable is how many of n entries costing cost(i) the budget left
// would take, charging nothing: at least one, so that fitPage decides
// whether a page can take its first. It cuts a page before its bodies are
// read.
func affordable(ctx context.Context, n int, cost func(i int) int64) int {
	b, ok := ctx.Value(budgetKey{}).(*byteBudget)
	if !ok {
		return n
	}
	left := b.left
	for i := range n {
		if left -= cost(i); left < 0 {
			return max(i, 1)
		}
	}
	return n
}

// charge takes n bytes from ctx's budget, if it has one; false when they
// do not fit.
func charge(ctx context.Context, n int64) bool {
	b, ok := ctx.Value(budgetKey{}).(*byteBudget)
	return !ok || b.take(n)
}

// take charges n bytes when they fit.
func (b *byteBudget) take(n int64) bool {
	if n > b.left {
		return false
	}
	b.left -= n
	b.touched = true
	return true
}

func versionCost(v store.Version) int64 { return int64(len(v.Body)) + entryOverhead }

// fitPage keeps the part of a page that fits the budget: from the start,
// or from the end for a page read backwards (its previous link continues
// from its first). cut reports whether any was left out. A page's first
// resource is kept when nothing was charged yet (one resource always fits
// a response of its own); else a page that cannot take even that fails
// with 413.
func fitPage(ctx context.Context, found []store.Version, backward bool) (kept []store.Version, cut bool, err error) {
	b, ok := ctx.Value(budgetKey{}).(*byteBudget)
	if !ok || len(found) == 0 {
		return found, false, nil
	}
	n := 0
	for i := range found {
		v := found[i]
		if backward {
			v = found[len(found)-1-i]
		}
		if !b.take(versionCost(v)) {
			if n == 0 && !b.touched {
				b.left, b.touched, n = 0, true, 1 // the first, alone
			}
			break
		}
		n++
	}
	if n == 0 {
		return nil, true, errBudget()
	}
	if backward {
		return found[len(found)-n:], n < len(found), nil
	}
	return found[:n], n < len(found), nil
}

func errBudget() error {
	return fhir.Errorf(fhir.KindTooLarge, "the response would exceed its budget of resource bytes (HERALD_MAX_RESPONSE_BYTES); ask for fewer entries or a smaller _count")
}

// fitEntry charges a batch or transaction entry's response to the budget.
// A search entry was charged page by page as it ran. A read that does not
// fit fails (413; it changed nothing). A write whose echo does not fit
// keeps its response (status, location, ETag: it happened) but leaves the
// resource out, as Prefer: return=minimal would.
func fitEntry(ctx context.Context, e *entry, out *fhir.BundleEntry) error {
	b, ok := ctx.Value(budgetKey{}).(*byteBudget)
	if !ok || e.query != nil || out.Resource == nil {
		return nil
	}
	if b.take(int64(len(out.Resource)) + entryOverhead) {
		return nil
	}
	if e.method == "GET" {
		return errBudget()
	}
	out.Resource = nil
	return nil
}
