package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is what the run proved.
type report struct {
	writes                 map[string]int // by outcome
	committed              int            // writes that exist in the store
	expectedEvents         int
	events                 int  // events the store assigned
	missing                int  // committed writes without their event
	invented               int  // events for no known write
	duplicatesInStore      int  // one write, two events for one Subscription
	numberGaps             int  // Subscriptions whose numbers are not 1..N
	receipts               int  // notifications received
	lost                   int  // events never acknowledged by their subscriber
	orderViolations        int  // a notification started past the acknowledged cursor + 1
	dupAfterUnacked        int  // sent again after an unacknowledged send: expected
	dupAfterAckInFault     int  // sent again after a 2xx that a crash kept from being recorded
	dupAfterAckUnexplained int  // sent again after a recorded 2xx: a violation
	drained                bool // every event delivered before the deadline
	statusByFinal          map[string]int
	failedNotifications    int
	lockWaiters            map[int]int      // status answered to writes that waited for the held row lock
	committedAfterError    int              // of those, answered with an error yet stored: a violation
	storedAfterError       int              // any error answer whose write is stored (possible when a fault cut the connection after COMMIT)
	perReceiver            map[fault][2]int // receipts, acknowledged
	detail                 []string
}

func (r *report) ok() bool {
	return r.drained && r.missing == 0 && r.invented == 0 && r.duplicatesInStore == 0 && r.numberGaps == 0 &&
		r.lost == 0 && r.orderViolations == 0 && r.dupAfterAckUnexplained == 0 && r.committedAfterError == 0
}

// drain waits until every Subscription's subscriber has acknowledged all
// its events.
func (w *world) drain(ctx context.Context, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		done := true
		for _, s := range w.subs {
			n, err := w.eventCount(ctx, s.id)
			if err != nil || contiguousAcked(s.recv.receipts()[s.id]) < n {
				done = false
				break
			}
		}
		if done {
			return true
		}
		if !sleepUntil(ctx, time.Now().Add(200*time.Millisecond)) {
			return false
		}
	}
	return false
}

// contiguousAcked is the highest n such that 1..n were all acknowledged.
func contiguousAcked(rs []receipt) int64 {
	acked := map[int64]bool{}
	for _, r := range rs {
		if r.acked {
			for _, e := range r.events {
				acked[e] = true
			}
		}
	}
	var n int64
	for acked[n+1] {
		n++
	}
	return n
}

func (w *world) eventCount(ctx context.Context, id string) (int64, error) {
	st, b, err := w.do(ctx, "GET", w.anyBase()+"/fhir/Subscription/"+id+"/$status", w.admin, "", "")
	if err != nil || st != 200 {
		return 0, fmt.Errorf("$status: %d %v", st, err)
	}
	var bundle struct {
		Entry []struct {
			Resource statusParameters `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil || len(bundle.Entry) == 0 {
		return 0, fmt.Errorf("$status: unreadable answer")
	}
	return bundle.Entry[0].Resource.total(), nil
}

func (w *world) anyBase() string {
	if u := w.a.baseURL(); u != "" {
		return u
	}
	return w.b.baseURL()
}

type statusParameters struct {
	Parameter []struct {
		Name           string `json:"name"`
		ValueString    string `json:"valueString"`
		ValueCode      string `json:"valueCode"`
		ValueReference struct {
			Reference string `json:"reference"`
		} `json:"valueReference"`
		Part []struct {
			Name           string `json:"name"`
			ValueString    string `json:"valueString"`
			ValueReference struct {
				Reference string `json:"reference"`
			} `json:"valueReference"`
		} `json:"part"`
	} `json:"parameter"`
}

func (p statusParameters) total() int64 {
	for _, x := range p.Parameter {
		if x.Name == "events-since-subscription-start" {
			n, _ := strconv.ParseInt(x.ValueString, 10, 64)
			return n
		}
	}
	return 0
}

func (p statusParameters) status() string {
	for _, x := range p.Parameter {
		if x.Name == "status" {
			return x.ValueCode
		}
	}
	return ""
}

// storedEvents lists a Subscription's events (number → focus id) with
// $events, a page at a time.
func (w *world) storedEvents(ctx context.Context, id string) (map[int64]string, string, error) {
	out := map[int64]string{}
	status := ""
	for since := int64(1); ; {
		st, b, err := w.do(ctx, "GET", fmt.Sprintf("%s/fhir/Subscription/%s/$events?eventsSinceNumber=%d", w.anyBase(), id, since), w.client, "", "") // $events answers only the owner
		if err != nil || st != 200 {
			return nil, "", fmt.Errorf("$events of %s: %d %v", id, st, err)
		}
		var bundle struct {
			Entry []struct {
				Resource statusParameters `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &bundle); err != nil || len(bundle.Entry) == 0 {
			return nil, "", fmt.Errorf("$events of %s: unreadable answer", id)
		}
		params := bundle.Entry[0].Resource
		status = params.status()
		got := 0
		for _, x := range params.Parameter {
			if x.Name != "notification-event" {
				continue
			}
			var n int64
			var focus string
			for _, part := range x.Part {
				switch part.Name {
				case "event-number":
					n, _ = strconv.ParseInt(part.ValueString, 10, 64)
				case "focus":
					focus = part.ValueReference.Reference[strings.LastIndex(part.ValueReference.Reference, "/")+1:]
				}
			}
			if _, dup := out[n]; dup {
				return nil, "", fmt.Errorf("$events of %s: event %d twice", id, n)
			}
			out[n] = focus
			since = max(since, n+1)
			got++
		}
		if got == 0 || since > params.total() {
			return out, status, nil
		}
	}
}

func (w *world) verify(ctx context.Context) (*report, error) {
	rep := &report{writes: map[string]int{}, statusByFinal: map[string]int{}, perReceiver: map[fault][2]int{}, lockWaiters: map[int]int{}}
	w.mu.Lock()
	writes := slices.Clone(w.writes)
	lockedPatient, lockFrom, lockTo := w.lockedPatient, w.lockFrom, w.lockTo
	w.mu.Unlock()
	// A write for the locked patient that started while the row was held
	// waited for it (its event is appended under that row).
	waitedForLock := func(wr write) bool {
		return lockedPatient != "" && wr.patient == lockedPatient && !wr.start.Before(lockFrom) && wr.start.Before(lockTo)
	}

	// Which writes committed: those acknowledged, and those whose outcome
	// the publisher could not know but the store has.
	committedByPatient := map[string][]string{}
	for _, wr := range writes {
		rep.writes[wr.outcome]++
		committed := wr.outcome == "ok"
		if !committed {
			st, _, err := w.do(ctx, "GET", w.anyBase()+"/fhir/Encounter/"+wr.id, w.publisher, "", "")
			if err != nil {
				return nil, fmt.Errorf("checking write %s: %w", wr.id, err)
			}
			committed = st == 200
		}
		if waitedForLock(wr) {
			rep.lockWaiters[wr.status]++
			if wr.outcome == "failed" && committed {
				rep.committedAfterError++
				rep.detail = append(rep.detail, fmt.Sprintf("write %s answered %d while waiting for the row lock, yet it is stored", wr.id, wr.status))
			}
		}
		if wr.outcome == "failed" && committed {
			rep.storedAfterError++
		}
		if committed {
			rep.committed++
			committedByPatient[wr.patient] = append(committedByPatient[wr.patient], wr.id)
		}
	}

	faultsCopy := w.faultWindows()
	for _, s := range w.subs {
		stored, status, err := w.storedEvents(ctx, s.id)
		if err != nil {
			return nil, err
		}
		rep.statusByFinal[status]++
		rep.events += len(stored)
		n := int64(len(stored))
		for i := int64(1); i <= n; i++ {
			if _, ok := stored[i]; !ok {
				rep.numberGaps++
				rep.detail = append(rep.detail, fmt.Sprintf("%s: event numbers are not 1..%d", s.id, n))
				break
			}
		}
		want := committedByPatient[s.patient]
		rep.expectedEvents += len(want)
		seen := map[string]int{}
		for _, focus := range stored {
			seen[focus]++
		}
		for _, id := range want {
			switch seen[id] {
			case 0:
				rep.missing++
				rep.detail = append(rep.detail, fmt.Sprintf("%s: no event for committed Encounter/%s", s.id, id))
			case 1:
			default:
				rep.duplicatesInStore++
			}
			delete(seen, id)
		}
		for id := range seen {
			rep.invented++
			rep.detail = append(rep.detail, fmt.Sprintf("%s: event for Encounter/%s, which no committed write made", s.id, id))
		}
		w.checkReceipts(rep, s, n, faultsCopy)
	}
	return rep, nil
}

// checkReceipts checks one Subscription's notifications as its subscriber
// saw them.
func (w *world) checkReceipts(rep *report, s subscriptionInfo, n int64, faults []faultWindow) {
	rs := slices.Clone(s.recv.receipts()[s.id])
	slices.SortStableFunc(rs, func(a, b receipt) int { return a.at.Compare(b.at) })
	counts := rep.perReceiver[s.recv.fault]
	var maxAcked int64
	ackedAt := map[int64]time.Time{}
	received := map[int64]bool{}
	for _, r := range rs {
		counts[0]++
		if r.acked {
			counts[1]++
		} else {
			rep.failedNotifications++
		}
		if r.kind != "event-notification" {
			continue
		}
		rep.receipts++
		if len(r.events) == 0 {
			continue
		}
		if r.events[0] > maxAcked+1 {
			rep.orderViolations++
			rep.detail = append(rep.detail, fmt.Sprintf("%s: received events from %d while only 1..%d were acknowledged", s.id, r.events[0], maxAcked))
		}
		for i := 1; i < len(r.events); i++ {
			if r.events[i] != r.events[i-1]+1 {
				rep.orderViolations++
				rep.detail = append(rep.detail, fmt.Sprintf("%s: a notification's events are not consecutive: %v", s.id, r.events))
				break
			}
		}
		for _, e := range r.events {
			if received[e] {
				if at, acked := ackedAt[e]; acked {
					if inFault(at, faults) {
						rep.dupAfterAckInFault++
					} else {
						rep.dupAfterAckUnexplained++
						rep.detail = append(rep.detail, fmt.Sprintf("%s: event %d sent again after a 2xx at %s", s.id, e, at.Format(time.TimeOnly)))
					}
				} else {
					rep.dupAfterUnacked++
				}
			}
			received[e] = true
			if r.acked {
				if _, ok := ackedAt[e]; !ok {
					ackedAt[e] = r.at
				}
			}
		}
		if r.acked {
			maxAcked = max(maxAcked, r.events[len(r.events)-1])
		}
	}
	rep.perReceiver[s.recv.fault] = counts
	for e := int64(1); e <= n; e++ {
		if _, ok := ackedAt[e]; !ok {
			rep.lost++
		}
	}
}

// inFault reports whether an acknowledgement at t may have been lost to a
// fault: the process that sent it was killed, or PostgreSQL went away,
// before it could record it.
func inFault(t time.Time, faults []faultWindow) bool {
	for _, f := range faults {
		if f.skipped != "" {
			continue
		}
		end := f.recovered
		if end.IsZero() {
			end = f.start.Add(time.Minute)
		}
		if !t.Before(f.start.Add(-2*channelTimeout)) && !t.After(end.Add(time.Second)) {
			return true
		}
	}
	return false
}

func (w *world) faultWindows() []faultWindow {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]faultWindow, len(w.faults))
	for i, f := range w.faults {
		out[i] = *f
	}
	return out
}

func (r *report) print(out io.Writer, w *world) {
	total := 0
	for _, n := range r.writes {
		total += n
	}
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAIL"
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| what | result | |")
	fmt.Fprintln(out, "|---|---|---|")
	fmt.Fprintf(out, "| load held | %d writes in %s (%.0f/s): %d acknowledged, %d refused, %d unanswered; %d committed | |\n",
		total, w.opts.duration, float64(total)/w.opts.duration.Seconds(), r.writes["ok"], r.writes["failed"], r.writes["unknown"], r.committed)
	for _, f := range faults {
		c := r.perReceiver[f]
		fmt.Fprintf(out, "| receiver %s (%s) | %d notifications, %d acknowledged | survived |\n", f, f.describe(), c[0], c[1])
	}
	for _, f := range w.faultWindows() {
		switch {
		case f.skipped != "":
			fmt.Fprintf(out, "| %s | not run: %s | |\n", f.name, f.skipped)
		case f.recovered.IsZero():
			fmt.Fprintf(out, "| %s | no write succeeded within 60 s | FAIL |\n", f.name)
		case !f.restarted.IsZero():
			fmt.Fprintf(out, "| %s | answered writes again %.2f s after its restart (the other instance served meanwhile) | survived |\n", f.name, f.recovered.Sub(f.restarted).Seconds())
		default:
			fmt.Fprintf(out, "| %s | writes answered again %.2f s after the fault began | survived |\n", f.name, f.recovered.Sub(f.start).Seconds())
		}
	}
	fmt.Fprintf(out, "| events | %d expected from the committed writes, %d stored | %s |\n", r.expectedEvents, r.events, verdict(r.expectedEvents == r.events))
	fmt.Fprintf(out, "| events lost | %d (committed writes without an event: %d; events never acknowledged: %d) | %s |\n",
		r.missing+r.lost, r.missing, r.lost, verdict(r.missing+r.lost == 0))
	fmt.Fprintf(out, "| events invented or doubled | %d invented, %d doubled, %d Subscriptions with a gap in numbering | %s |\n",
		r.invented, r.duplicatesInStore, r.numberGaps, verdict(r.invented+r.duplicatesInStore+r.numberGaps == 0))
	fmt.Fprintf(out, "| order | %d event notifications received, %d out of order | %s |\n", r.receipts, r.orderViolations, verdict(r.orderViolations == 0))
	fmt.Fprintf(out, "| duplicates | %d after an unacknowledged send; %d after a 2xx lost to a crash; %d otherwise | %s |\n",
		r.dupAfterUnacked, r.dupAfterAckInFault, r.dupAfterAckUnexplained, verdict(r.dupAfterAckUnexplained == 0))
	fmt.Fprintf(out, "| writes behind the held row lock | answered %v (status: count); %d answered with an error yet stored | %s |\n",
		r.lockWaiters, r.committedAfterError, verdict(r.committedAfterError == 0))
	fmt.Fprintf(out, "| error answers whose write is stored | %d (possible only when a fault cut the connection after COMMIT: a 5xx may hide a committed write) | |\n", r.storedAfterError)
	fmt.Fprintf(out, "| drained | %v; final statuses %v | %s |\n", r.drained, r.statusByFinal, verdict(r.drained))
	fmt.Fprintln(out)
	for i, d := range r.detail {
		if i == 20 {
			fmt.Fprintf(out, "… and %d more\n", len(r.detail)-20)
			break
		}
		fmt.Fprintln(out, "  ", d)
	}
	fmt.Fprintf(out, "RELIABILITY ok=%v lost=%d duplicates_unexplained=%d order_violations=%d\n",
		r.ok(), r.missing+r.lost, r.dupAfterAckUnexplained, r.orderViolations)
}
