package resources

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// bundleRequest is the part of an incoming batch/transaction Bundle Herald reads.
type bundleRequest struct {
	Type  string
	Entry []bundleEntry
	// problems are the R4 problems found in each entry's resource, by entry
	// index (the Bundle is validated once, as a whole).
	problems map[int][]fhir.Problem
}

type bundleEntry struct {
	FullURL  string
	Resource *strictjson.Value // nil when absent
	Request  *entryRequest
}

type entryRequest struct {
	Method, URL, IfMatch, IfNoneExist string
}

// readBundle takes what Herald needs from a parsed Bundle; the R4 check has
// vouched for the members' kinds.
func readBundle(root *strictjson.Value) bundleRequest {
	var req bundleRequest
	req.Type, _ = root.Get("type").String()
	for _, e := range root.Get("entry").Itemized() {
		var be bundleEntry
		be.FullURL, _ = e.Get("fullUrl").String()
		if r := e.Get("resource"); r != nil && r.Kind != strictjson.Null {
			be.Resource = r
		}
		if rq := e.Get("request"); rq != nil {
			be.Request = &entryRequest{}
			be.Request.Method, _ = rq.Get("method").String()
			be.Request.URL, _ = rq.Get("url").String()
			be.Request.IfMatch, _ = rq.Get("ifMatch").String()
			be.Request.IfNoneExist, _ = rq.Get("ifNoneExist").String()
		}
		req.Entry = append(req.Entry, be)
	}
	return req
}

// splitProblems sorts a Bundle's R4 problems into those of its entries'
// resources (by entry index) and the rest, the Bundle's own.
func splitProblems(problems []fhir.Problem) (own []fhir.Problem, byEntry map[int][]fhir.Problem) {
	byEntry = map[int][]fhir.Problem{}
	for _, p := range problems {
		if i, ok := entryIndex(p.Expression); ok {
			byEntry[i] = append(byEntry[i], p)
			continue
		}
		own = append(own, p)
	}
	return own, byEntry
}

// allProblems lists the entries' problems in entry order.
func allProblems(byEntry map[int][]fhir.Problem, entries int) []fhir.Problem {
	var out []fhir.Problem
	for i := 0; i < entries; i++ {
		out = append(out, byEntry[i]...)
	}
	return out
}

// entryIndex is i when expression lies in Bundle.entry[i].resource.
func entryIndex(expression string) (int, bool) {
	rest, ok := strings.CutPrefix(expression, "Bundle.entry[")
	if !ok {
		return 0, false
	}
	num, rest, ok := strings.Cut(rest, "]")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	if err != nil || !(rest == ".resource" || strings.HasPrefix(rest, ".resource.") || strings.HasPrefix(rest, ".resource[")) {
		return 0, false
	}
	return i, true
}

// entry is one parsed Bundle entry, ready to run.
type entry struct {
	index   int
	method  string // GET, POST, PUT, DELETE
	typ, id string
	vid     string     // GET of a version
	query   url.Values // GET search; nil for reads
	ifMatch string
	fullURL string
	// condition: ifNoneExist of a POST, the query of a PUT or DELETE.
	condition url.Values
	existing  *store.Version // what a conditional POST matched in a transaction
	body      []byte
	tree      *strictjson.Value // the resource as parsed within the Bundle
	resource  *fhir.Resource
}

// processOrder is the order FHIR prescribes for transaction entries.
var processOrder = map[string]int{"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}

// Bundle runs a batch or transaction Bundle and returns its response Bundle.
// A transaction runs in one store transaction: all of it commits or none of
// it does, and urn:uuid / urn:oid fullUrls are resolved to the new resources
// in every reference. A batch runs each entry on its own. minimal leaves the
// written resources out of the response (Prefer: return=minimal).
func (s *Service) Bundle(ctx context.Context, p *auth.Principal, body []byte, minimal bool) (*fhir.Bundle, error) {
	ctx, _ = s.withBudget(ctx) // one budget for the whole response
	r, err := fhir.Parse(body)
	if err != nil {
		return nil, err
	}
	if r.Type != "Bundle" {
		return nil, fhir.Errorf(fhir.KindInvalid, "POST to the base accepts only a batch or transaction Bundle, not %s", r.Type)
	}
	if n := len(r.Tree().Get("entry").Itemized()); n > s.maxEntries {
		return nil, fhir.Errorf(fhir.KindTooLarge, "the Bundle has %d entries; at most %d are allowed in one batch or transaction", n, s.maxEntries)
	}
	req := readBundle(r.Tree())
	problems := fhir.Problems(r)
	if len(problems) >= fhir.MaxProblems {
		// Validation stopped at the cap: the entries (and Bundle members)
		// after the last problem were never checked, so none may run.
		return nil, fhir.Invalid("Bundle", problems)
	}
	own, byEntry := splitProblems(problems)
	if len(own) > 0 {
		return nil, fhir.Invalid("Bundle", own)
	}
	for i, e := range req.Entry {
		if t, _ := e.Resource.Get("resourceType").String(); fhir.IsResourceType(t) && !fhir.IsR4ResourceType(t) {
			delete(byEntry, i) // Herald's own types are checked by their rules
		}
	}
	req.problems = byEntry
	switch req.Type {
	case "transaction":
		// All or nothing: every entry's problems answer at once.
		if err := fhir.Invalid("Bundle", allProblems(byEntry, len(req.Entry))); err != nil {
			return nil, err
		}
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
		if e.method != "GET" && e.id != "" {
			target := e.typ + "/" + e.id
			if j, dup := targets[target]; dup {
				return nil, fhir.Errorf(fhir.KindInvalid, "entries %d and %d both change %s; a transaction may change a resource once", j, i, target)
			}
			targets[target] = i
		}
		if isURN(e.fullURL) && e.method != "GET" && e.method != "DELETE" && e.id != "" {
			if _, dup := refs[e.fullURL]; dup {
				return nil, fhir.Errorf(fhir.KindInvalid, "entry %d repeats fullUrl %s; each entry's fullUrl must be unique", i, clip(e.fullURL))
			}
			refs[e.fullURL] = e.typ + "/" + e.id
		}
		entries[i] = e
	}
	order := make([]*entry, len(entries))
	copy(order, entries)
	slices.SortStableFunc(order, func(a, b *entry) int { return processOrder[a.method] - processOrder[b.method] })

	out := fhir.NewBundle("transaction-response", s.now())
	out.Entry = make([]fhir.BundleEntry, len(entries))
	err := s.inTx(ctx, func(tx store.Tx, log *commitLog) error {
		// What conditional creates match decides what their fullUrls mean,
		// so they are matched before any reference is resolved.
		resolved, err := s.matchConditionalCreates(ctx, tx, p, entries, refs)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.body == nil || e.existing != nil {
				continue
			}
			if e.resource, err = parseEntryResource(e, resolveRefs(e.body, resolved), nil); err != nil {
				return err
			}
		}
		for _, e := range order {
			res, err := s.runEntry(ctx, tx, log, p, e, minimal)
			if err == nil {
				err = fitEntry(ctx, e, &res)
			}
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

// matchConditionalCreates runs the ifNoneExist searches of a transaction's
// POST entries: an entry that matches one resource becomes that resource
// (its fullUrl now refers to it). It returns refs with those changes.
func (s *Service) matchConditionalCreates(ctx context.Context, tx store.Tx, p *auth.Principal, entries []*entry, refs map[string]string) (map[string]string, error) {
	resolved := maps.Clone(refs)
	for _, e := range entries {
		e.existing = nil // a retried transaction matches afresh
		if e.method != "POST" || e.condition == nil {
			continue
		}
		found, err := s.conditionMatches(ctx, tx, p, e.typ, e.condition, "ifNoneExist")
		switch {
		case err != nil:
			return nil, entryError(e, err)
		case len(found) > 1:
			return nil, entryError(e, fhir.Errorf(fhir.KindPrecondition, "ifNoneExist matches more than one %s; make the condition select one", e.typ))
		case len(found) == 1:
			e.existing = &found[0]
			if isURN(e.fullURL) {
				resolved[e.fullURL] = e.typ + "/" + found[0].ID
			}
		}
	}
	return resolved, nil
}

func (s *Service) batch(ctx context.Context, p *auth.Principal, req bundleRequest, minimal bool) *fhir.Bundle {
	out := fhir.NewBundle("batch-response", s.now())
	out.Entry = make([]fhir.BundleEntry, len(req.Entry))
	for i := range req.Entry {
		e, err := s.parseEntry(req, i)
		if err == nil && e.body != nil {
			e.resource, err = parseEntryResource(e, e.body, req.problems[i])
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
		if err == nil {
			err = fitEntry(ctx, e, &out.Entry[i]) // after the commit: a write keeps its answer
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
		op := writeOp{method: store.MethodDelete, typ: e.typ, id: e.id, ifMatch: want, log: log}
		if e.condition != nil {
			_, err = s.deleteWhere(ctx, tx, p, op, e.condition)
		} else {
			_, err = s.write(ctx, tx, p, op)
		}
		if err != nil {
			return fhir.BundleEntry{}, err
		}
		return fhir.BundleEntry{Response: &fhir.EntryResponse{Status: fhir.StatusText(204)}}, nil
	}
	want, err := parseIfMatch(e.ifMatch)
	if err != nil {
		return fhir.BundleEntry{}, err
	}
	res, err := s.writeEntry(ctx, tx, log, p, e, want)
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

// writeEntry performs a POST or PUT entry, conditional or not.
func (s *Service) writeEntry(ctx context.Context, tx store.Tx, log *commitLog, p *auth.Principal, e *entry, ifMatch int64) (Result, error) {
	op := writeOp{method: store.MethodCreate, typ: e.typ, id: e.id, resource: e.resource, body: e.body, ifMatch: ifMatch, log: log}
	switch {
	case e.existing != nil:
		return Result{Version: *e.existing, Echo: e.existing.Body}, nil
	case e.method == "POST" && e.condition != nil:
		return s.createIfNoneExist(ctx, tx, p, op, e.condition)
	case e.method == "POST":
		return s.write(ctx, tx, p, op)
	case e.condition != nil:
		op.method, op.id = store.MethodUpdate, e.resource.ID
		return s.updateWhere(ctx, tx, p, op, e.condition)
	}
	op.method = store.MethodUpdate
	return s.write(ctx, tx, p, op)
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
			return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: POST request.url must be a resource type (a condition goes in request.ifNoneExist)", i)
		}
		e.id = s.newID()
		if raw.Request.IfNoneExist != "" {
			var err error
			if e.condition, err = s.entryCondition(i, strings.TrimPrefix(raw.Request.IfNoneExist, "?")); err != nil {
				return nil, err
			}
		}
	case "PUT", "DELETE":
		switch {
		case len(parts) == 1 && hasQuery:
			var err error
			if e.condition, err = s.entryCondition(i, rawQuery); err != nil {
				return nil, err
			}
		case len(parts) != 2 || hasQuery || !fhir.ValidID(parts[1]):
			return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: %s request.url must be Type/id or Type?condition", i, e.method)
		default:
			e.id = parts[1]
		}
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
		if raw.Resource == nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: %s needs a resource", i, e.method)
		}
		e.body, e.tree = raw.Resource.Raw, raw.Resource
	}
	return e, nil
}

func (s *Service) entryCondition(i int, raw string) (url.Values, error) {
	condition, err := fhir.ParseParams(raw, s.limits)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "entry %d: condition: %s", i, fhir.AsError(err).Message)
	}
	return condition, nil
}

// parseEntryResource makes the resource of a POST or PUT entry. The Bundle
// was validated as a whole: problems are this entry's. body is the
// resource's bytes, changed only where urn: references were resolved; a
// changed resource is validated again (a resolved urn:uuid is no longer a
// uuid, say).
func parseEntryResource(e *entry, body []byte, problems []fhir.Problem) (*fhir.Resource, error) {
	id := ""
	if e.method == "PUT" {
		id = e.id
	}
	r, rewritten, err := entryResource(e, body)
	if err == nil {
		err = matchesURL(r, e.typ, id)
	}
	if err == nil && rewritten {
		problems = fhir.Problems(r)
	}
	if err == nil {
		err = fhir.Invalid(e.typ, problems)
	}
	if err != nil {
		return nil, entryError(e, err)
	}
	if e.method == "PUT" && e.condition == nil && r.ID == "" {
		return nil, entryError(e, fhir.Errorf(fhir.KindInvalid, "the resource must carry id %q", e.id))
	}
	return r, nil
}

// entryResource reuses the parsed entry unless resolving references changed
// its bytes (rewritten).
func entryResource(e *entry, body []byte) (r *fhir.Resource, rewritten bool, err error) {
	if e.tree != nil && len(body) == len(e.tree.Raw) && (len(body) == 0 || &body[0] == &e.tree.Raw[0]) {
		r, err = fhir.FromTree(e.tree)
		return r, false, err
	}
	r, err = fhir.Parse(body)
	return r, true, err
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
			if strictjson.Unmarshal(body[i:min(end+1, len(body))], &decoded) == nil {
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
