package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Validate checks a resource's datatypes and codes against FHIR R4 by
// decoding it into the typed models of samply/golang-fhir-models: a boolean
// that is a string, an unknown code in a required binding the models
// enumerate, a malformed nested element. It does not check cardinality or
// invariants. Unknown elements pass (Herald keeps them). A failure is a 422
// that names the element.
func Validate(r *Resource, body []byte) error {
	if heraldTypes[r.Type] || validationOff {
		return nil // validated by the type's own rules (e.g. internal/topic)
	}
	decode, ok := r4Decoders[r.Type]
	if !ok {
		return Errorf(KindInvalid, "%q is not a FHIR R4 resource type", clip(r.Type))
	}
	if err := decode(body); err != nil {
		return &Error{Kind: KindUnprocessable, Code: "structure", Message: describeDecodeError(r.Type, err), Err: err}
	}
	return nil
}

// validationOff is set only in benchmark builds (-tags heraldnovalidate),
// which measure what validation costs; no setting turns it off in Herald.
var validationOff bool

func describeDecodeError(typ string, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := typ
		if te.Field != "" {
			path += "." + te.Field
		}
		return fmt.Sprintf("%s: a JSON %s is not a valid %s here", path, te.Value, fhirTypeName(te.Type.String()))
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "unknown ") && strings.Contains(msg, " code `") {
		// samply's enum errors: "unknown AdministrativeGender code `x`"
		return fmt.Sprintf("%s: %s", typ, clip(msg))
	}
	return fmt.Sprintf("%s is not a valid FHIR R4 %s", typ, typ)
}

// fhirTypeName maps the Go type samply used to a FHIR-ish word.
func fhirTypeName(goType string) string {
	switch strings.TrimLeft(goType, "*[]") {
	case "bool":
		return "boolean"
	case "string":
		return "string"
	case "int", "int64", "uint", "uint64":
		return "integer"
	case "float64", "json.Number":
		return "decimal"
	default:
		if strings.HasPrefix(goType, "[]") {
			return "array"
		}
		return "object"
	}
}
