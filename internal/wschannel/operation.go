package wschannel

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/subscription"
)

// Path is where sockets connect, on the API's own listener.
const Path = "/fhir/$subscription-ws"

// Issuer answers $get-ws-binding-token.
type Issuer struct {
	Operations *subscription.Operations // who may bind which Subscriptions
	Tokens     *Tokens
	BaseURL    string // HERALD_BASE_URL: the websocket-url follows its scheme and host
}

// BindingToken mints a token for ids (none: all of p's websocket
// Subscriptions that are not off) and returns the Parameters answer.
func (i *Issuer) BindingToken(ctx context.Context, p *auth.Principal, ids []string) ([]byte, error) {
	states, err := i.Operations.Bindable(ctx, p, ids)
	if err != nil {
		return nil, err
	}
	bound := make([]string, 0, len(states))
	for _, st := range states {
		bound = append(bound, st.ID)
	}
	tok, g, err := i.Tokens.Mint(p.ClientID, p.Context(), bound)
	if err != nil {
		return nil, err
	}
	type param struct {
		Name        string `json:"name"`
		ValueString string `json:"valueString,omitempty"`
		ValueDT     string `json:"valueDateTime,omitempty"`
		ValueURL    string `json:"valueUrl,omitempty"`
	}
	params := []param{{Name: "token", ValueString: tok}, {Name: "expiration", ValueDT: g.ExpiresAt().Format(time.RFC3339)}}
	for _, id := range bound {
		params = append(params, param{Name: "subscription", ValueString: id})
	}
	params = append(params, param{Name: "websocket-url", ValueURL: WebsocketURL(i.BaseURL)})
	return json.Marshal(struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}{"Parameters", params})
}

// WebsocketURL is where sockets connect for a FHIR base: wss:// for an
// https base, ws:// only for a plain http one (development, tests).
func WebsocketURL(baseURL string) string {
	u := strings.TrimSuffix(baseURL, "/")
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	// Path under the base: the API's listener serves both.
	return u + "/" + strings.TrimPrefix(Path, "/fhir/")
}
