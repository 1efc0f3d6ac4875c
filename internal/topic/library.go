package topic

import (
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Library is the set of topics the server evaluates, keyed by canonical URL
// and version. It is safe for concurrent use; readers get immutable Topics.
type Library struct {
	mu    sync.RWMutex
	byURL map[string][]*Topic // versions of one URL, in Put order
	byID  map[string]*Topic   // by resource id
	// loaded is the stored version each topic was read from by Reload;
	// Put (a write on this instance) forgets it.
	loaded map[string]int64
}

// NewLibrary returns an empty library.
func NewLibrary() *Library {
	return &Library{byURL: map[string][]*Topic{}, byID: map[string]*Topic{}, loaded: map[string]int64{}}
}

// Put adds t, replacing the topic stored under the same resource id.
func (l *Library) Put(t *Topic) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.removeLocked(t.ID)
	delete(l.loaded, t.ID)
	l.byID[t.ID] = t
	l.byURL[t.URL] = append(l.byURL[t.URL], t)
}

// Remove drops the topic stored under a resource id.
func (l *Library) Remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.removeLocked(id)
}

func (l *Library) removeLocked(id string) {
	old, ok := l.byID[id]
	if !ok {
		return
	}
	delete(l.byID, id)
	vs := slices.DeleteFunc(l.byURL[old.URL], func(t *Topic) bool { return t == old })
	if len(vs) == 0 {
		delete(l.byURL, old.URL)
	} else {
		l.byURL[old.URL] = vs
	}
}

// Lookup finds a topic by canonical: "url|version" picks that version;
// "url" picks the active version, preferring the one Put last.
func (l *Library) Lookup(canonical string) (*Topic, bool) {
	url, version, hasVersion := strings.Cut(canonical, "|")
	l.mu.RLock()
	defer l.mu.RUnlock()
	vs := l.byURL[url]
	for i := len(vs) - 1; i >= 0; i-- {
		t := vs[i]
		if hasVersion && t.Version == version || !hasVersion && t.Status == "active" {
			return t, true
		}
	}
	return nil, false
}

// Watching lists the active topics with a trigger on the resource type, in
// no particular order. It is on every write's path, so it neither sorts nor
// allocates when no topic watches the type.
func (l *Library) Watching(typ string) []*Topic {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []*Topic
	for _, vs := range l.byURL {
		for _, t := range vs {
			if t.Status == "active" && t.TriggersOn(typ) {
				out = append(out, t)
			}
		}
	}
	return out
}

// Active lists the active topics ordered by canonical.
func (l *Library) Active() []*Topic {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []*Topic
	for _, vs := range l.byURL {
		for _, t := range vs {
			if t.Status == "active" {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Canonical() < out[j].Canonical() })
	return out
}

// Builtin reads the built-in topic definitions from fsys (topics.FS). Each
// must parse; a broken built-in is a programming error the tests catch.
func Builtin(fsys fs.FS) ([]*Topic, [][]byte, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	var topics []*Topic
	var raws [][]byte
	for _, name := range names {
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, nil, err
		}
		t, err := Parse(raw)
		if err != nil {
			return nil, nil, &builtinError{name: path.Base(name), err: err}
		}
		topics = append(topics, t)
		raws = append(raws, raw)
	}
	return topics, raws, nil
}

type builtinError struct {
	name string
	err  error
}

func (e *builtinError) Error() string { return "built-in topic " + e.name + ": " + e.err.Error() }
func (e *builtinError) Unwrap() error { return e.err }

// All lists every topic (any status) ordered by canonical.
func (l *Library) All() []*Topic {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*Topic, 0, len(l.byID))
	for _, t := range l.byID {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Canonical() < out[j].Canonical() })
	return out
}
