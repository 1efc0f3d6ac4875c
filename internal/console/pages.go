package console

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/herald-fhir/herald/internal/admin"
	"github.com/herald-fhir/herald/internal/allowlist"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/topic"
)

// done are the messages a change leaves for the page it redirects to
// (codes in the URL, never text from the request).
var done = map[string]string{
	"added":       "Allow-list entry added.",
	"removed":     "Allow-list entry removed.",
	"saved":       "Client saved.",
	"retried":     "Retry scheduled: the next attempt is due now.",
	"reactivated": "Subscription reactivated: a handshake is due now.",
}

func doneMessage(r *http.Request) string { return done[r.URL.Query().Get("done")] }

// allowListData is the allow-list page.
type allowListData struct {
	Entries []store.AllowedEndpoint
	Form    admin.EndpointInput
	Check   string // the URL checked without script (GET ?check=)
	Verdict *allowlist.Verdict
}

func (c *Console) allowList(w http.ResponseWriter, r *http.Request) {
	c.showAllowList(w, r, http.StatusOK, allowListData{Check: r.URL.Query().Get("check")}, "")
}

func (c *Console) showAllowList(w http.ResponseWriter, r *http.Request, status int, d allowListData, problem string) {
	entries, err := c.opts.Admin.Endpoints(r.Context())
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d.Entries = entries
	if d.Check != "" {
		v, err := c.opts.Admin.CheckEndpoint(r.Context(), d.Check)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		d.Verdict = &v
	}
	c.render(w, r, status, "allowlist", page{Title: "Allow-list", Nav: "allowlist", Done: doneMessage(r), Error: problem, Data: d})
}

// verdictJSON is the live check's answer to the console's script.
type verdictJSON struct {
	Allowed  bool       `json:"allowed"`
	Endpoint string     `json:"endpoint"`
	Invalid  string     `json:"invalid,omitempty"`
	Match    string     `json:"match,omitempty"`
	Private  bool       `json:"allow_private_network"`
	Misses   []missJSON `json:"misses"`
}

type missJSON struct {
	Prefix string `json:"prefix"`
	Reason string `json:"reason"`
}

// checkEndpoint answers the allow-list page's live check.
func (c *Console) checkEndpoint(w http.ResponseWriter, r *http.Request) {
	v, err := c.opts.Admin.CheckEndpoint(r.Context(), r.URL.Query().Get("url"))
	if err != nil {
		status, msg := c.userError(r, err)
		http.Error(w, msg, status)
		return
	}
	out := verdictJSON{Allowed: v.Match != nil, Endpoint: v.Endpoint, Misses: []missJSON{}}
	if v.Invalid != nil {
		out.Invalid = v.Invalid.Error()
	}
	if v.Match != nil {
		out.Match, out.Private = v.Match.URLPrefix, v.Match.AllowPrivateNetwork
	}
	for _, m := range v.Misses {
		out.Misses = append(out.Misses, missJSON{Prefix: m.Entry.URLPrefix, Reason: m.Reason})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (c *Console) addEndpoint(w http.ResponseWriter, r *http.Request) {
	in := admin.EndpointInput{
		URLPrefix:           strings.TrimSpace(r.PostFormValue("url_prefix")),
		AllowPrivateNetwork: r.PostFormValue("allow_private_network") == "on",
		Note:                r.PostFormValue("note"),
	}
	if _, err := c.opts.Admin.AddEndpoint(r.Context(), in); err != nil {
		status, msg := c.userError(r, err)
		c.showAllowList(w, r, status, allowListData{Form: in}, msg)
		return
	}
	http.Redirect(w, r, Prefix+"/allowlist?done=added", http.StatusSeeOther)
}

func (c *Console) removeEndpoint(w http.ResponseWriter, r *http.Request) {
	if err := c.opts.Admin.RemoveEndpoint(r.Context(), r.PostFormValue("id")); err != nil {
		status, msg := c.userError(r, err)
		c.showAllowList(w, r, status, allowListData{}, msg)
		return
	}
	http.Redirect(w, r, Prefix+"/allowlist?done=removed", http.StatusSeeOther)
}

// clientsData is the client registry page.
type clientsData struct {
	Clients  []store.Client
	Statuses []string
	Payloads []string
	Form     store.Client // the new-client form (or the refused edit)
}

func (c *Console) clients(w http.ResponseWriter, r *http.Request) {
	c.showClients(w, r, http.StatusOK, store.Client{Status: "active", MaxPayload: "id-only"}, "")
}

func (c *Console) showClients(w http.ResponseWriter, r *http.Request, status int, form store.Client, problem string) {
	cs, err := c.opts.Admin.Clients(r.Context())
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d := clientsData{Clients: cs, Statuses: admin.ClientStatuses, Payloads: admin.ClientMaxPayloads, Form: form}
	c.render(w, r, status, "clients", page{Title: "Clients", Nav: "clients", Done: doneMessage(r), Error: problem, Data: d})
}

func (c *Console) saveClient(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.PostFormValue("client_id"))
	in := admin.ClientInput{Status: r.PostFormValue("status"), MaxPayload: r.PostFormValue("max_payload"), ScopeCeiling: r.PostFormValue("scope_ceiling")}
	if _, _, err := c.opts.Admin.PutClient(r.Context(), id, in); err != nil {
		status, msg := c.userError(r, err)
		c.showClients(w, r, status, store.Client{ClientID: id, Status: in.Status, MaxPayload: in.MaxPayload, ScopeCeiling: in.ScopeCeiling}, msg)
		return
	}
	http.Redirect(w, r, Prefix+"/clients?done=saved", http.StatusSeeOther)
}

func (c *Console) topics(w http.ResponseWriter, r *http.Request) {
	ts := c.opts.Topics.All()
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b *topic.Topic) int { return strings.Compare(a.ID, b.ID) })
	c.render(w, r, http.StatusOK, "topics", page{Title: "Topics", Nav: "topics", Data: ts})
}
