package subscription

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/strictjson"
	"github.com/herald-fhir/herald/internal/webhook"
)

// wire mirrors the JSON members Herald reads. Extensions stay raw so their
// value[x] names can be checked.
type wire struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	Reason      string          `json:"reason"`
	End         string          `json:"end"`
	Criteria    string          `json:"criteria"`
	CriteriaExt *element        `json:"_criteria"`
	ModifierExt json.RawMessage `json:"modifierExtension"`
	Channel     *struct {
		Extension   []json.RawMessage `json:"extension"`
		ModifierExt json.RawMessage   `json:"modifierExtension"`
		Type        string            `json:"type"`
		TypeExt     *element          `json:"_type"`
		Endpoint    string            `json:"endpoint"`
		Payload     string            `json:"payload"`
		PayloadExt  *element          `json:"_payload"`
		Header      []string          `json:"header"`
	} `json:"channel"`
}

// element is a primitive's sibling "_x" object.
type element struct {
	Extension []json.RawMessage `json:"extension"`
}

// extension is one decoded Extension: its url and its single value[x].
type extension struct {
	url       string
	valueType string // e.g. "valueString"; "" when none
	value     json.RawMessage
}

// Parse reads a backport Subscription from the client's JSON and checks
// everything that does not depend on server state (topics, allow-list,
// the caller). Errors are *fhir.Error: 400 for JSON that does not have the
// shape of a Subscription, 422 for rules it breaks, naming the element.
func Parse(body []byte, now time.Time) (*Subscription, error) {
	// Duplicate member names would let encoding/json (last wins) and the
	// exact-JSON rewrite disagree about what was sent: refuse them in the
	// objects Herald interprets.
	top, err := fhir.ParseObject(body)
	if err != nil {
		return nil, err
	}
	if ch := top.Get("channel"); len(ch) > 0 && ch[0] == '{' {
		if _, err := fhir.ParseObject(ch); err != nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "Subscription.channel: %s", fhir.AsError(err).Message)
		}
	}
	var w wire
	if err := strictjson.Unmarshal(body, &w); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "the Subscription is malformed: %s", typeError(err))
	}
	if len(w.ModifierExt) > 0 {
		return nil, invalid("Subscription.modifierExtension", "modifier extensions are not supported")
	}
	s := &Subscription{ID: w.ID, Status: w.Status, Reason: w.Reason, Topic: w.Criteria}

	switch w.Status {
	case "", fhir.StatusRequested, fhir.StatusActive, fhir.StatusError, fhir.StatusOff:
	default:
		return nil, invalid("Subscription.status", "status must be requested, active, error or off, not %q", clip(w.Status))
	}
	if strings.TrimSpace(w.Reason) == "" {
		return nil, invalid("Subscription.reason", "reason is required (R4 Subscription.reason is 1..1): say why the subscription exists")
	}
	if err := parseTopic(w.Criteria); err != nil {
		return nil, err
	}
	if w.End != "" {
		end, err := parseInstant(w.End)
		if err != nil {
			return nil, invalid("Subscription.end", "end must be a FHIR instant with a time zone, such as 2026-12-31T23:59:59Z")
		}
		if !end.After(now) {
			return nil, invalid("Subscription.end", "end must be in the future")
		}
		s.End = end
	}
	if w.CriteriaExt != nil {
		for _, raw := range w.CriteriaExt.Extension {
			ext, err := decodeExtension(raw, "Subscription._criteria.extension")
			if err != nil {
				return nil, err
			}
			if ext.url != fhir.ExtFilterCriteria {
				return nil, unknownExtension("Subscription._criteria.extension", ext.url)
			}
			var v string
			if err := ext.as("valueString", &v); err != nil {
				return nil, err
			}
			f, err := ParseFilter(v)
			if err != nil {
				return nil, invalid("Subscription._criteria.extension", "%s", err)
			}
			s.Filters = append(s.Filters, f)
		}
	}
	if w.Channel == nil {
		return nil, invalid("Subscription.channel", "channel is required")
	}
	if err := parseChannel(s, w); err != nil {
		return nil, err
	}
	return s, nil
}

func parseTopic(criteria string) error {
	if criteria == "" {
		return invalid("Subscription.criteria", "criteria is required: the canonical URL of a SubscriptionTopic (see the CapabilityStatement)")
	}
	canonical, _, _ := strings.Cut(criteria, "|")
	u, err := url.Parse(canonical)
	if err != nil || !u.IsAbs() || u.Host == "" || strings.Contains(criteria, "?") {
		return invalid("Subscription.criteria", "criteria must be a SubscriptionTopic canonical URL, not a search query; put filters in backport-filter-criteria extensions on _criteria")
	}
	return nil
}

func parseChannel(s *Subscription, w wire) error {
	ch := w.Channel
	if len(ch.ModifierExt) > 0 {
		return invalid("Subscription.channel.modifierExtension", "modifier extensions are not supported")
	}
	if ch.Type != fhir.ChannelRestHook && ch.Type != fhir.ChannelWebsocket {
		return invalid("Subscription.channel.type", "channel.type must be rest-hook or websocket (the channels Herald supports), not %q", clip(ch.Type))
	}
	s.Channel = ch.Type
	if ch.TypeExt != nil && len(ch.TypeExt.Extension) > 0 {
		ext, err := decodeExtension(ch.TypeExt.Extension[0], "Subscription.channel._type.extension")
		if err != nil {
			return err
		}
		if ext.url == fhir.ExtChannelType {
			return &fhir.Error{Kind: fhir.KindUnprocessable, Code: "not-supported", Expression: []string{"Subscription.channel.type"},
				Message: "custom channel types (backport-channel-type) are not supported; use rest-hook or websocket"}
		}
		return unknownExtension("Subscription.channel._type.extension", ext.url)
	}
	switch {
	case s.Channel == fhir.ChannelWebsocket && ch.Endpoint != "":
		return invalid("Subscription.channel.endpoint", "a websocket Subscription has no endpoint: the client connects to the websocket-url that $get-ws-binding-token returns")
	case s.Channel == fhir.ChannelRestHook && ch.Endpoint == "":
		return invalid("Subscription.channel.endpoint", "endpoint is required for rest-hook")
	}
	s.Endpoint = ch.Endpoint
	if err := parsePayload(s, ch.Payload, ch.PayloadExt); err != nil {
		return err
	}
	for _, raw := range ch.Extension {
		if err := parseChannelExtension(s, raw); err != nil {
			return err
		}
	}
	if s.Channel == fhir.ChannelWebsocket && (s.SigningSecret != "" || len(ch.Header) > 0) {
		// Nothing is posted: a secret or headers would be kept for nothing.
		return invalid("Subscription.channel", "a websocket Subscription takes no signing secret and no channel.header: notifications go over the socket the binding token opened")
	}
	if s.NotificationToken && s.Channel == fhir.ChannelWebsocket {
		return invalid("Subscription.channel.extension", "notification-access-token is for rest-hook: websocket notifications carry no tokens (the socket's own binding token already authorizes the subscriber)")
	}
	if s.NotificationToken && s.Content != fhir.ContentIDOnly {
		return invalid("Subscription.channel.extension", "notification-access-token needs id-only content: an empty notification names no resource to read, and a full-resource one already carries them")
	}
	if len(ch.Header) > Limits.MaxHeaders {
		return invalid("Subscription.channel.header", "at most %d headers are allowed", Limits.MaxHeaders)
	}
	for _, line := range ch.Header {
		h, err := ParseHeader(line)
		if err != nil {
			return invalid("Subscription.channel.header", "%s", err)
		}
		s.Headers = append(s.Headers, h)
	}
	return nil
}

func parsePayload(s *Subscription, payload string, ext *element) error {
	if payload == "" {
		return invalid("Subscription.channel.payload", "payload is required: application/fhir+json")
	}
	mt, params, err := mime.ParseMediaType(payload)
	switch {
	case err != nil || strings.ContainsFunc(payload, unicode.IsControl):
		return invalid("Subscription.channel.payload", "payload %q is not a media type: Herald sends application/fhir+json or application/json", clip(payload))
	case mt == "application/fhir+xml" || mt == "application/xml" || mt == "text/xml":
		return invalid("Subscription.channel.payload", "payload %q cannot be produced: Herald renders notifications as JSON only; use application/fhir+json or application/json", clip(payload))
	case mt != "application/fhir+json" && mt != "application/json":
		return invalid("Subscription.channel.payload", "payload %q cannot be produced: Herald sends application/fhir+json or application/json", clip(payload))
	}
	for k, v := range params {
		if k != "fhirversion" || (v != "4.0" && v != "4.0.1") {
			return invalid("Subscription.channel.payload", "payload parameter %s=%s cannot be honoured: Herald sends FHIR R4 (fhirVersion=4.0)", clip(k), clip(v))
		}
	}
	// Kept exactly as written: the rest-hook Content-Type SHALL equal it.
	s.Payload = payload
	if ext == nil || len(ext.Extension) == 0 {
		return invalid("Subscription.channel._payload", "the payload content is required: a backport-payload-content extension (empty, id-only or full-resource) on channel._payload")
	}
	if len(ext.Extension) > 1 {
		return invalid("Subscription.channel._payload", "exactly one backport-payload-content extension is allowed")
	}
	e, err := decodeExtension(ext.Extension[0], "Subscription.channel._payload.extension")
	if err != nil {
		return err
	}
	if e.url != fhir.ExtPayloadContent {
		return unknownExtension("Subscription.channel._payload.extension", e.url)
	}
	if err := e.as("valueCode", &s.Content); err != nil {
		return err
	}
	switch s.Content {
	case fhir.ContentEmpty, fhir.ContentIDOnly, fhir.ContentFullResource:
		return nil
	default:
		return invalid("Subscription.channel._payload", "payload content must be empty, id-only or full-resource, not %q", clip(s.Content))
	}
}

func parseChannelExtension(s *Subscription, raw json.RawMessage) error {
	const where = "Subscription.channel.extension"
	ext, err := decodeExtension(raw, where)
	if err != nil {
		return err
	}
	seconds := func(valueType string, min, max time.Duration) (time.Duration, error) {
		var n int64
		if err := ext.as(valueType, &n); err != nil {
			return 0, err
		}
		d := time.Duration(n) * time.Second
		if n < 0 || d < min || d > max {
			return 0, invalid(where, "%s must be between %d and %d seconds", ext.url, int(min.Seconds()), int(max.Seconds()))
		}
		return d, nil
	}
	switch ext.url {
	case fhir.ExtHeartbeatPeriod:
		s.HeartbeatPeriod, err = seconds("valueUnsignedInt", Limits.MinHeartbeat, Limits.MaxHeartbeat)
	case fhir.ExtTimeout:
		s.Timeout, err = seconds("valueUnsignedInt", webhook.MinTimeout, webhook.MaxTimeout)
	case fhir.ExtMaxCount:
		if err = ext.as("valuePositiveInt", &s.MaxCount); err == nil && (s.MaxCount < 1 || s.MaxCount > Limits.MaxMaxCount) {
			err = invalid(where, "backport-max-count must be between 1 and %d", Limits.MaxMaxCount)
		}
	case fhir.ExtNotificationToken:
		err = ext.as("valueBoolean", &s.NotificationToken)
	case fhir.ExtSigningSecret:
		if err = ext.as("valueString", &s.SigningSecret); err == nil && len(s.SigningSecret) < Limits.MinSecretLen {
			err = invalid(where, "the signing secret must be at least %d characters", Limits.MinSecretLen)
		}
	default:
		err = unknownExtension(where, ext.url)
	}
	return err
}

// decodeExtension reads one Extension with exactly one value[x].
func decodeExtension(raw json.RawMessage, where string) (extension, error) {
	var m map[string]json.RawMessage
	if err := strictjson.Unmarshal(raw, &m); err != nil {
		return extension{}, fhir.Errorf(fhir.KindInvalid, "%s: an extension must be an object", where)
	}
	var e extension
	if u, ok := m["url"]; !ok || strictjson.Unmarshal(u, &e.url) != nil || e.url == "" {
		return extension{}, fhir.Errorf(fhir.KindInvalid, "%s: an extension needs a url", where)
	}
	for k, v := range m {
		if strings.HasPrefix(k, "value") {
			if e.valueType != "" {
				return extension{}, invalid(where, "extension %s has more than one value[x]", clip(e.url))
			}
			e.valueType, e.value = k, v
		}
	}
	return e, nil
}

// as decodes the extension's value, which must be of valueType.
func (e extension) as(valueType string, into any) error {
	if e.valueType != valueType {
		return invalid("", "extension %s needs %s, not %s", clip(e.url), valueType, orNone(e.valueType))
	}
	if err := strictjson.Unmarshal(e.value, into); err != nil {
		return invalid("", "extension %s: %s is not valid", clip(e.url), valueType)
	}
	return nil
}

// ParseFilter reads one backport-filter-criteria value in any of the forms
// the IG uses: "Encounter?patient=Patient/1&status=in-progress" (its
// examples), "patient=Patient/1" and "Encounter.patient=Patient/1" (its
// narrative). A modifier may follow the name: "status:not=finished".
func ParseFilter(raw string) (Filter, error) {
	f := Filter{Raw: raw}
	query := raw
	if typ, rest, ok := strings.Cut(raw, "?"); ok {
		if !fhir.IsR4ResourceType(typ) {
			return f, fmt.Errorf("filter %q: %q is not a FHIR R4 resource type", clip(raw), clip(typ))
		}
		f.ResourceType, query = typ, rest
	}
	if query == "" {
		return f, fmt.Errorf("filter %q has no parameter", clip(raw))
	}
	for _, part := range strings.Split(query, "&") {
		name, value, ok := strings.Cut(part, "=")
		if !ok || name == "" || value == "" {
			return f, fmt.Errorf("filter %q: %q is not param=value", clip(raw), clip(part))
		}
		if f.ResourceType == "" {
			if typ, param, ok := strings.Cut(name, "."); ok && fhir.IsR4ResourceType(typ) {
				f.ResourceType, name = typ, param
			}
		}
		name, modifier, _ := strings.Cut(name, ":")
		v, err := url.QueryUnescape(value)
		if err != nil {
			return f, fmt.Errorf("filter %q: bad %%-encoding in %q", clip(raw), clip(value))
		}
		if !validParamName(name) {
			return f, fmt.Errorf("filter %q: %q is not a search parameter name", clip(raw), clip(name))
		}
		f.Params = append(f.Params, FilterParam{Name: name, Modifier: modifier, Value: v})
	}
	return f, nil
}

func validParamName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// ParseHeader reads one channel.header line, "Name: value", rejecting
// header injection (CR, LF, NUL), bad names and headers Herald owns.
func ParseHeader(line string) (Header, error) {
	if strings.ContainsAny(line, "\r\n\x00") {
		return Header{}, fmt.Errorf("a header must be one line: CR, LF and NUL are not allowed")
	}
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return Header{}, fmt.Errorf("header %q is not \"Name: value\"", clipSecret(line))
	}
	if !validHeaderName(name) {
		return Header{}, fmt.Errorf("header name %q is not a valid HTTP header name", clip(name))
	}
	canonical := textproto.CanonicalMIMEHeaderKey(name)
	if webhook.Reserved(canonical) {
		return Header{}, fmt.Errorf("header %s is set by Herald and cannot be supplied", canonical)
	}
	value = strings.TrimSpace(value)
	for _, r := range value {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return Header{}, fmt.Errorf("header %s has a control character in its value", canonical)
		}
	}
	return Header{Name: canonical, Value: value}, nil
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func parseInstant(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

func invalid(where, format string, args ...any) *fhir.Error {
	e := &fhir.Error{Kind: fhir.KindUnprocessable, Code: "invalid", Message: fmt.Sprintf(format, args...)}
	if where != "" {
		e.Expression = []string{where}
		e.Message = where + ": " + e.Message
	}
	return e
}

func unknownExtension(where, url string) *fhir.Error {
	return invalid(where, "extension %q is not understood here; Herald rejects extensions it would otherwise ignore (check the URL: %s)", clip(url), expected(where))
}

func expected(where string) string {
	switch where {
	case "Subscription._criteria.extension":
		return fhir.ExtFilterCriteria
	case "Subscription.channel._payload.extension":
		return fhir.ExtPayloadContent
	case "Subscription.channel.extension":
		return "backport-heartbeat-period, backport-timeout, backport-max-count or " + fhir.ExtSigningSecret
	default:
		return "see the backport IG"
	}
}

func typeError(err error) string {
	var se *strictjson.Error
	if errors.As(err, &se) && se.Path != "" {
		return fmt.Sprintf("Subscription.%s: %s", se.Path, se.Msg)
	}
	return err.Error()
}

func orNone(s string) string {
	if s == "" {
		return "no value"
	}
	return s
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// clipSecret shows only the start of something that may carry a secret.
func clipSecret(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}
