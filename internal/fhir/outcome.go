package fhir

import "encoding/json"

// OperationOutcome is the minimal R4 OperationOutcome Herald emits.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// Outcome builds the OperationOutcome for an error. Internal errors never
// carry their cause.
func Outcome(err error) OperationOutcome {
	fe := AsError(err)
	msg := fe.Message
	if fe.Kind == KindInternal {
		msg = "internal server error"
	}
	if fe.Kind != KindInternal && len(fe.Problems) > 0 {
		oo := OperationOutcome{ResourceType: "OperationOutcome", Issue: make([]Issue, len(fe.Problems))}
		for i, p := range fe.Problems {
			oo.Issue[i] = Issue{Severity: "error", Code: p.Code, Diagnostics: p.Message}
			if p.Expression != "" {
				oo.Issue[i].Expression = []string{p.Expression}
			}
		}
		return oo
	}
	return OperationOutcome{
		ResourceType: "OperationOutcome",
		Issue: []Issue{{
			Severity:    "error",
			Code:        fe.IssueCode(),
			Diagnostics: msg,
			Expression:  fe.Expression,
		}},
	}
}

// OutcomeJSON is Outcome marshalled.
func OutcomeJSON(err error) []byte {
	b, _ := json.Marshal(Outcome(err))
	return b
}
