package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
)

// Unmarshal decodes data into out after Parse has accepted it. Member names
// match struct fields (by their `json` tag) exactly: a member that differs
// from a field only in case is an unknown member, never that field. The
// decoder is encoding/json/v2's (Go's next standard library package).
func Unmarshal(data []byte, out any) error {
	return unmarshal(data, out)
}

// UnmarshalKnown is Unmarshal that also refuses members out has no field for
// (for JSON APIs of Herald's own, where an unknown member is a typo).
func UnmarshalKnown(data []byte, out any) error {
	return unmarshal(data, out, jsonv2.RejectUnknownMembers(true))
}

func unmarshal(data []byte, out any, opts ...jsonv2.Options) error {
	if err := Check(data); err != nil {
		return err
	}
	if err := jsonv2.Unmarshal(data, out, opts...); err != nil {
		return semanticError(err)
	}
	return nil
}

// semanticError says which member had the wrong JSON type, in the same
// dotted form Parse uses.
func semanticError(err error) *Error {
	var se *jsonv2.SemanticError
	if !errors.As(err, &se) {
		return &Error{Msg: "the JSON does not have the expected shape"}
	}
	e := &Error{Offset: int(se.ByteOffset), Path: dotted(string(se.JSONPointer)), Msg: "a value of the wrong type"}
	switch {
	case errors.Is(se.Err, jsonv2.ErrUnknownName):
		e.Msg = "unknown member"
	case se.GoType != nil:
		e.Msg = "must be " + expected(se.GoType.Kind())
		if k := kindWord(se.JSONKind.String()); k != "" {
			e.Msg += ", not a JSON " + k
		}
	}
	return e
}

// dotted turns a JSON pointer (/channel/header/0) into channel.header[0].
func dotted(pointer string) string {
	if pointer == "" {
		return ""
	}
	var b strings.Builder
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		if n, err := strconv.Atoi(tok); err == nil && n >= 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(Clip(tok))
	}
	return b.String()
}

// expected names the JSON a Go kind decodes from.
func expected(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a JSON string"
	case reflect.Bool:
		return "a JSON boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a JSON number"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	}
	return "another kind of value"
}

func kindWord(k string) string {
	switch k {
	case "string", "number", "object", "array", "null":
		return k
	case "true", "false":
		return "boolean"
	}
	return ""
}

// Any converts a Value into the generic form encoding/json produces for an
// `any` target: map[string]any, []any, string, json.Number, bool and nil.
// Names are exact (Parse already refused repeats and case variants).
func (v *Value) Any() any {
	switch v.Kind {
	case Object:
		m := make(map[string]any, len(v.Members))
		for i := range v.Members {
			m[v.Members[i].Name] = v.Members[i].Value.Any()
		}
		return m
	case Array:
		a := make([]any, len(v.Items))
		for i := range v.Items {
			a[i] = v.Items[i].Any()
		}
		return a
	case String:
		return v.Str
	case Number:
		return json.Number(v.Raw)
	case Bool:
		return v.True
	}
	return nil
}
