// Command wsclient is the websocket quickstart: it creates a websocket
// Subscription (unless -subscription names one), asks Herald for a binding
// token ($get-ws-binding-token), connects to the websocket-url Herald
// returns, sends bind-with-token and prints every notification it gets
// until interrupted.
//
//	go run ./scripts/wsclient -token "$HERALD_CLIENT_TOKEN"
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"

	"github.com/coder/websocket"
)

func main() {
	base := flag.String("base", "http://localhost:8080/fhir", "Herald's FHIR base (HERALD_BASE_URL)")
	token := flag.String("token", os.Getenv("HERALD_CLIENT_TOKEN"), "a SMART bearer token with system/Subscription.crus and read access to the topic (default $HERALD_CLIENT_TOKEN)")
	sub := flag.String("subscription", "", "bind this websocket Subscription id instead of creating one")
	patient := flag.String("patient", "p1", "the patient whose Encounters the created Subscription follows")
	content := flag.String("content", "id-only", "payload content of the created Subscription: empty, id-only or full-resource")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *base, *token, *sub, *patient, *content); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "wsclient:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, base, token, sub, patient, content string) error {
	if token == "" {
		return errors.New("no token: pass -token or export HERALD_CLIENT_TOKEN (make run prints one)")
	}
	if sub == "" {
		body := fmt.Sprintf(`{"resourceType":"Subscription","status":"requested","reason":"websocket quickstart",
  "criteria":"https://herald.dev/fhir/SubscriptionTopic/encounter-start",
  "_criteria":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria","valueString":"Encounter?patient=Patient/%s"}]},
  "channel":{"type":"websocket","payload":"application/fhir+json",
    "extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period","valueUnsignedInt":60}],
    "_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":%q}]}}}`, patient, content)
		var created struct{ ID string }
		if err := call(ctx, "POST", base+"/Subscription", token, body, &created); err != nil {
			return fmt.Errorf("creating the Subscription: %w", err)
		}
		sub = created.ID
		fmt.Printf("created Subscription/%s (websocket, %s, Encounters of Patient/%s)\n", sub, content, patient)
	}
	var params struct {
		Parameter []struct {
			Name        string
			ValueString string
			ValueURL    string `json:"valueUrl"`
			ValueDT     string `json:"valueDateTime"`
		}
	}
	if err := call(ctx, "GET", base+"/Subscription/"+sub+"/$get-ws-binding-token", token, "", &params); err != nil {
		return fmt.Errorf("getting a binding token: %w", err)
	}
	var bindToken, url, expires string
	for _, p := range params.Parameter {
		switch p.Name {
		case "token":
			bindToken = p.ValueString
		case "websocket-url":
			url = p.ValueURL
		case "expiration":
			expires = p.ValueDT
		}
	}
	fmt.Printf("binding token valid until %s; connecting to %s\n", expires, url)
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)
	if err := conn.Write(ctx, websocket.MessageText, []byte("bind-with-token "+bindToken)); err != nil {
		return err
	}
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return fmt.Errorf("closed by Herald: %d %s", ce.Code, ce.Reason)
			}
			return err
		}
		fmt.Println(summary(msg))
	}
}

// call sends one FHIR request and decodes a 2xx answer into out.
func call(ctx context.Context, method, url, token, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode > 299 {
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// summary is one line about a notification Bundle: its type, Subscription,
// event count and the focus of each event.
func summary(msg []byte) string {
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string
				Parameter    []struct {
					Name           string
					ValueString    string
					ValueCode      string
					ValueReference struct{ Reference string }
					Part           []struct {
						Name           string
						ValueString    string
						ValueReference struct{ Reference string }
					}
				}
			}
		}
	}
	if err := json.Unmarshal(msg, &b); err != nil || len(b.Entry) == 0 {
		return string(msg)
	}
	var typ, sub, since string
	var focus []string
	for _, p := range b.Entry[0].Resource.Parameter {
		switch p.Name {
		case "type":
			typ = p.ValueCode
		case "subscription":
			sub = p.ValueReference.Reference
		case "events-since-subscription-start":
			since = p.ValueString
		case "notification-event":
			for _, part := range p.Part {
				if part.Name == "focus" {
					focus = append(focus, part.ValueReference.Reference)
				}
			}
		}
	}
	line := fmt.Sprintf("%-18s %s events-since-subscription-start=%s", typ, sub, since)
	if len(focus) > 0 {
		line += " focus=" + strings.Join(focus, ",")
	}
	return fmt.Sprintf("%s (%d bytes)", line, len(msg))
}
