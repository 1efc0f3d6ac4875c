package allowlist

import (
	"errors"
	"strings"
)

// Entry is one row of the endpoint allow-list.
type Entry struct {
	ID        string
	URLPrefix string
	// AllowPrivateNetwork lets endpoints matched by this entry resolve to
	// private, loopback and other non-public addresses (see [IsPrivateIP]).
	AllowPrivateNetwork bool
	Note                string
}

// EntryError is why an allow-list entry could not be compiled.
type EntryError struct {
	ID  string
	Err error // a *URLError
}

func (e *EntryError) Error() string { return "allow-list entry " + e.ID + ": " + e.Err.Error() }

// Unwrap returns the parse error.
func (e *EntryError) Unwrap() error { return e.Err }

// Matches reports whether p admits e: same scheme, host and port, and p's path
// a prefix of e's path on a segment boundary. Zero values never match.
func (p Prefix) Matches(e Endpoint) bool { return p.Mismatch(e) == "" }

// Mismatch says why p does not admit e, in words for an administrator; ""
// when it does. It is the one statement of the matching rule: [Prefix.Matches]
// is Mismatch == "".
func (p Prefix) Mismatch(e Endpoint) string {
	switch {
	case p.scheme == "" || e.scheme == "":
		return "nothing to compare"
	case p.scheme != e.scheme:
		return "the scheme differs (" + e.scheme + " is not " + p.scheme + ")"
	case p.host != e.host:
		return "the host differs"
	case p.port != e.port:
		return "the port differs"
	case !strings.HasPrefix(e.path, p.path):
		return "the path does not start with " + p.path
	case len(e.path) != len(p.path) && !strings.HasSuffix(p.path, "/") && e.path[len(p.path)] != '/':
		return "the path continues " + p.path + " within a segment (" + p.path + "x is not under " + p.path + ")"
	}
	return ""
}

type compiled struct {
	entry  Entry
	prefix Prefix
}

// List is a compiled allow-list. A nil or empty List matches nothing. It is
// immutable and safe for concurrent use.
type List struct {
	entries []compiled
}

// Compile parses every entry's URLPrefix. The returned List is never nil: it
// holds every valid entry, so one bad row cannot disable the others. The
// error, if any, joins an [*EntryError] for each invalid entry; those entries
// match nothing.
func Compile(entries []Entry) (*List, error) {
	l := &List{entries: make([]compiled, 0, len(entries))}
	var errs []error
	for _, e := range entries {
		p, err := ParseEntry(e.URLPrefix)
		if err != nil {
			errs = append(errs, &EntryError{ID: e.ID, Err: err})
			continue
		}
		l.entries = append(l.entries, compiled{entry: e, prefix: p})
	}
	return l, errors.Join(errs...)
}

// Len is the number of valid entries.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.entries)
}

// Match returns the entry admitting e with the longest path prefix. Between
// entries with equal normalised prefixes, one with AllowPrivateNetwork false
// wins, then the earliest.
func (l *List) Match(e Endpoint) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	best := -1
	for i, c := range l.entries {
		if !c.prefix.Matches(e) {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := l.entries[best]
		switch {
		case len(c.prefix.path) > len(b.prefix.path):
			best = i
		case len(c.prefix.path) == len(b.prefix.path) && b.entry.AllowPrivateNetwork && !c.entry.AllowPrivateNetwork:
			best = i
		}
	}
	if best < 0 {
		return Entry{}, false
	}
	return l.entries[best].entry, true
}

// MatchURL parses endpoint with [ParseEndpoint] and matches it. The error is
// the parse error; not matching is (Entry{}, false, nil).
func (l *List) MatchURL(endpoint string) (Entry, bool, error) {
	e, err := ParseEndpoint(endpoint)
	if err != nil {
		return Entry{}, false, err
	}
	m, ok := l.Match(e)
	return m, ok, nil
}

// Match compiles entries and matches endpoint against them; see [List.Match].
// Entries whose prefix does not parse are skipped (they admit nothing); the
// error is only ever the endpoint's parse error. Use [Compile] to see entry
// errors, or to match many endpoints against one list.
func Match(entries []Entry, endpoint string) (Entry, bool, error) {
	l, _ := Compile(entries)
	return l.MatchURL(endpoint)
}

// Verdict is what [Explain] found for one endpoint.
type Verdict struct {
	Endpoint string // the normalised endpoint; "" when it does not parse
	Invalid  error  // why the endpoint is refused before any entry is tried (a *URLError)
	Match    *Entry // the entry that admits it, as [List.Match] chooses
	Misses   []Miss // every entry that does not admit it, and why
}

// Miss is one entry that does not admit an endpoint.
type Miss struct {
	Entry  Entry
	Reason string
}

// Explain tells an administrator whether endpoint would be admitted by l and,
// entry by entry, why not; the decision is [List.Match]'s.
func (l *List) Explain(endpoint string) Verdict {
	e, err := ParseEndpoint(endpoint)
	if err != nil {
		return Verdict{Invalid: err}
	}
	v := Verdict{Endpoint: e.String()}
	if m, ok := l.Match(e); ok {
		v.Match = &m
	}
	if l == nil {
		return v
	}
	for _, c := range l.entries {
		if r := c.prefix.Mismatch(e); r != "" {
			v.Misses = append(v.Misses, Miss{Entry: c.entry, Reason: r})
		}
	}
	return v
}
