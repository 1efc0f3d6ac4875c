package fhir

import (
	"fmt"

	"github.com/herald-fhir/herald/internal/r4"
)

// Validate checks a parsed resource against the structure of FHIR R4
// (internal/r4: element names, choice types, cardinality, primitive formats,
// required codes, nested and contained resources). A failure is a 422 whose
// OperationOutcome has one issue, with its FHIRPath expression, for every
// problem found. Herald's own types (SubscriptionTopic) are validated by
// their type's rules instead.
func Validate(r *Resource) error {
	return Invalid(r.Type, Problems(r))
}

// MaxProblems is the most problems Problems reports: a list this long may
// have left parts of the resource unchecked.
const MaxProblems = r4.MaxProblems

// Problems lists every way r is not valid R4 (nil when it is, or when it is
// of one of Herald's own types).
func Problems(r *Resource) []Problem {
	if heraldTypes[r.Type] || validationOff {
		return nil
	}
	found := r4.Validate(r.Tree())
	if len(found) == 0 {
		return nil
	}
	out := make([]Problem, len(found))
	for i, p := range found {
		out[i] = Problem{Code: p.Code, Message: p.Message, Expression: p.Expression}
	}
	return out
}

// Invalid is the 422 for a resource of type typ with these problems, or nil
// when there are none.
func Invalid(typ string, problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	first := problems[0]
	msg := fmt.Sprintf("the %s is not valid FHIR R4: %s: %s", typ, first.Expression, first.Message)
	if len(problems) > 1 {
		msg = fmt.Sprintf("the %s is not valid FHIR R4 (%d problems; the first: %s: %s)", typ, len(problems), first.Expression, first.Message)
	}
	return &Error{Kind: KindUnprocessable, Code: "structure", Message: msg, Expression: []string{first.Expression}, Problems: problems}
}

// validationOff is set only in benchmark builds (-tags heraldnovalidate),
// which measure what validation costs; no setting turns it off in Herald.
var validationOff bool
