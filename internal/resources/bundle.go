package resources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// bundleRequest is the part of an incoming batch/transaction Bundle Herald reads.
type bundleRequest struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method  string `json:"method"`
			URL     string `json:"url"`
			IfMatch string `json:"ifMatch"`
		} `json:"request"`
	} `json:"entry"`
}

// entry is one parsed Bundle entry, ready to run.
type entry struct {
	index    int
	method   string // GET, POST, PUT, DELETE
	typ, id  string
	vid      string     // GET of a version
	query    url.Values // GET search; nil for reads
	ifMatch  string
	fullURL  string
	body     []byte
	resource *fhir.Resource
}

// processOrder is the order FHIR prescribes for transaction entries.
var processOrder = map[string]int{"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}

// Bundle runs a batch or transaction Bundle and returns its response Bundle.
// A transaction runs in one store transaction: all of it commits or none of
// it does, and urn:uuid / urn:oid fullUrls are resolved to the new resources
// in every reference. A batch runs each entry on its own. minimal leaves the
// written resources out of the response (Prefer: return=minimal).
func (s *Service) Bundle(ctx context.Context, p *auth.Principal, body []byte, minimal bool) (*fhir.Bundle, error) {
	r, err := fhir.Parse(body)
	if err != nil {
		return nil, err
	}
	if r.Type != "Bundle" {
		return nil, fhir.Errorf(fhir.KindInvalid, "POST to the base accepts only a batch or transaction Bundle, not %s", r.Type)
	}
	var req bundleRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "the Bundle is malformed: %s", shortJSONError(err))
	}
	switch req.Type {
	case "transaction":
		return s.transaction(ctx, p, req, minimal)
	case "batch":
		return s.batch(ctx, p, req, minimal), nil
	default:
		return nil, fhir.Errorf(fhir.KindInvalid, "Bundle.type must be batch or transaction, not %q", clip(req.Type))
	}
}

func (s *Service) transaction(ctx context.Context, p *auth.Principal, req bundleRequest, minimal bool) (*fhir.Bundle, error) {
	entries := make([]*entry, len(req.Entry))
	refs := map[string]string{} // urn fullUrl → Type/id
	targets := map[string]int{}
	for i := range req.Entry {
		e, err := s.parseEntry(req, i)
		if err != nil {
			return nil, err
		}
		if e.method != "GET" {
			target := e.typ + "/" + e.id
			if j, dup := targets[target]; dup {
				return nil, fhir.Errorf(fhir.KindInvalid, "entries %d and %d both change %s; a transaction may change a resource once", j, i, target)
			}
			targets[target] = i
		}
		if isURN(e.fullURL) && e.method != "GET" && e.method != "DELETE" {
			if _, dup := refs[e.fullURL]; dup {
				return nil, fhir.Errorf(fhir.KindInvalid, "entry %d repeats fullUrl %s; each entry's fullUrl must be unique", i, clip(e.fullURL))
			}
			refs[e.fullURL] = e.typ + "/" + e.id
		}
		entries[i] = e
	}
	for _, e := range entries {
		if e.body == nil {
			continue
		}
		var err error
		if e.resource, err = parseEntryResource(e, resolveRefs(e.body, refs)); err != nil {
			return nil, err
		}
	}

	order := make([]*entry, len(entries))
	copy(order, entries)
	slices.SortStableFunc(order, func(a, b *entry) int { return processOrder[a.method] - processOrder[b.method] })

	out := fhir.NewBundle("transaction-response", s.now())
	out.Entry = make([]fhir.BundleEntry, len(entries))
	err := s.inTx(ctx, func(tx store.Tx, log *commitLog) error {
		for _, e := range order {
			res, err := s.runEntry(ctx, tx, log, p, e, minimal)
			if err != nil {
				return entryError(e, err)
			}
			out.Entry[e.index] = res
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) batch(ctx context.Context, p *auth.Principal, req bundleRequest, minimal bool) *fhir.Bundle {
	out := fhir.NewBundle("batch-response", s.now())
	out.Entry = make([]fhir.BundleEntry, len(req.Entry))
	for i := range req.Entry {
		e, err := s.parseEntry(req, i)
		if err == nil && e.body != nil {
			e.resource, err = parseEntryResource(e, e.body)
		}
		switch {
		case err == nil && e.method == "GET":
			out.Entry[i], err = s.getEntry(ctx, s.store, p, e)
		case err == nil:
			err = s.inTx(ctx, func(tx store.Tx, log *commitLog) error {
				var err error
				out.Entry[i], err = s.runEntry(ctx, tx, log, p, e, minimal)
				return err
			})
		}
		if err != nil {
			fe := fhir.AsError(err)
			out.Entry[i] = fhir.BundleEntry{Response: &fhir.EntryResponse{
				Status:  fhir.StatusText(fe.Status()),
				Outcome: fhir.OutcomeJSON(fe),
			}}
		}
	}
	return out
}

// runEntry performs one entry inside tx and builds its response entry.
func (s *Service) runEntry(ctx context.Context, tx store.Tx, log *commitLog, p *auth.Principal, e *entry, minimal bool) (fhir.BundleEntry, error) {
	switch e.method {
	case "GET":
		return s.getEntry(ctx, tx, p, e)
	case "DELETE":
		want, err := parseIfMatch(e.ifMatch)
		if err != nil {
			return fhir.BundleEntry{}, err
		}
		if _, err := s.write(ctx, tx, p, writeOp{method: store.MethodDelete, typ: e.typ, id: e.id, ifMatch: want, log: log}); err != nil {
			return fhir.BundleEntry{}, err
		}
		return fhir.BundleEntry{Response: &fhir.EntryResponse{Status: fhir.StatusText(204)}}, nil
	}
	method := store.MethodCreate
	if e.method == "PUT" {
		method = store.MethodUpdate
	}
	want, err := parseIfMatch(e.ifMatch)
	if err != nil {
		return fhir.BundleEntry{}, err
	}
	res, err := s.write(ctx, tx, p, writeOp{method: method, typ: e.typ, id: e.id, resource: e.resource, body: e.body, ifMatch: want, log: log})
	if err != nil {
		return fhir.BundleEntry{}, err
	}
	v := res.Version
	status := 200
	if res.Created {
		status = 201
	}
	out := fhir.BundleEntry{
		FullURL: s.fullURL(v.Type, v.ID),
		Response: &fhir.EntryResponse{
			Status:       fhir.StatusText(status),
			Location:     fmt.Sprintf("%s/%s/_history/%d", v.Type, v.ID, v.VersionID),
			Etag:         fhir.ETag(v.VersionID),
			LastModified: fhir.FormatInstant(v.LastUpdated),
		},
	}
	if !minimal {
		out.Resource = res.Echo
	}
	return out, nil
}

func (s *Service) getEntry(ctx context.Context, r store.View, p *auth.Principal, e *entry) (fhir.BundleEntry, error) {
	if e.query != nil {
		b, err := s.search(ctx, r, p, e.typ, e.query, false)
		if err != nil {
			return fhir.BundleEntry{}, err
		}
		return fhir.BundleEntry{Resource: b.JSON(), Response: &fhir.EntryResponse{Status: fhir.StatusText(200)}}, nil
	}
	var v store.Version
	var err error
	if e.vid != "" {
		v, err = s.vread(ctx, r, p, e.typ, e.id, e.vid)
	} else {
		v, err = s.read(ctx, r, p, e.typ, e.id)
	}
	if err != nil {
		return fhir.BundleEntry{}, err
	}
	return fhir.BundleEntry{
		FullURL:  s.fullURL(v.Type, v.ID),
		Resource: v.Body,
		Response: &fhir.EntryResponse{
			Status:       fhir.StatusText(200),
			Etag:         fhir.ETag(v.VersionID),
			LastModified: fhir.FormatInstant(v.LastUpdated),
		},
	}, nil
}

// parseEntry validates entry i's request and assigns new resources their ids.
func (s *Service) parseEntry(req bundleRequest, i int) (*entry, error) {
	raw := req.Entry[i]
	if raw.Request == nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "entry %d has no request", i)
	}
	e := &entry{index: i, method: raw.Request.Method, ifMatch: raw.Request.IfMatch, fullURL: raw.FullURL}
	u := strings.TrimPrefix(raw.Request.URL, s.baseURL+"/")
	path, rawQuery, hasQuery := strings.Cut(u, "?")
	parts := strings.Split(path, "/")
	e.typ = parts[0]
	if !fhir.IsResourceType(e.typ) {
		return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: request.url %q does not name a FHIR R4 resource type", i, clip(raw.Request.URL))
	}
	switch e.method {
	case "POST":
		if len(parts) != 1 || hasQuery {
			return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: POST request.url must be a resource type (conditional create is not supported)", i)
		}
		e.id = s.newID()
	case "PUT", "DELETE":
		if len(parts) != 2 || hasQuery || !fhir.ValidID(parts[1]) {
			return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: %s request.url must be Type/id (conditional operations are not supported)", i, e.method)
		}
		e.id = parts[1]
	case "GET":
		var err error
		switch {
		case len(parts) == 1:
			if e.query, err = fhir.ParseParams(rawQuery, s.limits); err != nil {
				return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: request.url: %s", i, fhir.AsError(err).Message)
			}
		case len(parts) == 2 && !hasQuery:
			e.id = parts[1]
		case len(parts) == 4 && parts[2] == "_history" && !hasQuery:
			e.id, e.vid = parts[1], parts[3]
		default:
			return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: GET request.url must be Type/id, Type/id/_history/vid or Type?query", i)
		}
	default:
		return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: request.method must be GET, POST, PUT or DELETE", i)
	}
	if e.method == "POST" || e.method == "PUT" {
		if len(raw.Resource) == 0 || bytes.Equal(raw.Resource, []byte("null")) {
			return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: %s needs a resource", i, e.method)
		}
		e.body = raw.Resource
	}
	return e, nil
}

func parseEntryResource(e *entry, body []byte) (*fhir.Resource, error) {
	id := ""
	if e.method == "PUT" {
		id = e.id
	}
	r, err := parseFor(e.typ, id, body)
	if err != nil {
		return nil, entryError(e, err)
	}
	if e.method == "PUT" && r.ID == "" {
		return nil, entryError(e, fhir.Errorf(fhir.KindInvalid, "the resource must carry id %q", e.id))
	}
	return r, nil
}

// entryError prefixes an error with the entry it came from.
func entryError(e *entry, err error) error {
	fe := fhir.AsError(err)
	if fe.Kind == fhir.KindInternal {
		return err
	}
	cp := *fe
	cp.Message = fmt.Sprintf("entry %d (%s %s): %s", e.index, e.method, e.typ, fe.Message)
	return &cp
}

func isURN(s string) bool {
	return strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:")
}

// resolveRefs replaces every JSON string equal to a key of refs with its
// value, copying all other bytes unchanged (so number text and member order
// survive). body must be valid JSON.
func resolveRefs(body []byte, refs map[string]string) []byte {
	if len(refs) == 0 || !bytes.Contains(body, []byte("urn:")) {
		return body
	}
	var out bytes.Buffer
	out.Grow(len(body))
	for i := 0; i < len(body); {
		if body[i] != '"' {
			out.WriteByte(body[i])
			i++
			continue
		}
		end := i + 1
		for end < len(body) && body[end] != '"' {
			if body[end] == '\\' {
				end++
			}
			end++
		}
		content := string(body[i+1 : min(end, len(body))])
		if strings.IndexByte(content, '\\') >= 0 {
			// An escaped string (e.g. "urn:uuid:\u0061bc") is compared by its value.
			var decoded string
			if json.Unmarshal(body[i:min(end+1, len(body))], &decoded) == nil {
				content = decoded
			}
		}
		if to, ok := refs[content]; ok {
			out.WriteString(`"` + to + `"`)
		} else {
			out.Write(body[i:min(end+1, len(body))])
		}
		i = end + 1
	}
	return out.Bytes()
}

func shortJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s must be a %s", te.Field, te.Type)
	}
	return "not valid JSON"
}
