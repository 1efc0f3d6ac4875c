package strictjson

import (
	"encoding/json"
	"errors"

	jsonv2 "github.com/go-json-experiment/json"
)

// Unmarshal decodes data into out after Parse has accepted it. Member names
// match struct fields (by their `json` tag) exactly: a member that differs
// from a field only in case is an unknown member, never that field. The
// decoder is encoding/json/v2's (Go's next standard library package).
func Unmarshal(data []byte, out any) error {
	if err := Check(data); err != nil {
		return err
	}
	if err := jsonv2.Unmarshal(data, out); err != nil {
		return &Error{Msg: typeReason(err)}
	}
	return nil
}

// typeReason shortens a decoding error to what the client needs: which
// member had the wrong JSON type.
func typeReason(err error) string {
	var se *jsonv2.SemanticError
	if errors.As(err, &se) {
		where := string(se.JSONPointer)
		if where == "" {
			where = "the top level"
		}
		if se.JSONKind != 0 && se.GoType != nil {
			return "a JSON " + kindWord(se.JSONKind.String()) + " is not valid at " + where
		}
		return "a value is not valid at " + where
	}
	return "the JSON does not have the expected shape"
}

func kindWord(k string) string {
	switch k {
	case "string", "number", "object", "array", "null":
		return k
	case "true", "false":
		return "boolean"
	}
	return "value"
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
