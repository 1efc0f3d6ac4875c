package topic

import "github.com/herald-fhir/herald/internal/fhir"

// PatientSelfDefinition defines Herald's `patient` filter on Patient: the
// Patient itself. R4 has no `patient` search parameter on Patient, yet every
// other patient-centred topic filters by `patient`, and patient-scoped
// tokens must pin their patient the same way everywhere.
const PatientSelfDefinition = "https://herald.dev/fhir/SearchParameter/Patient-patient"

func isHeraldParam(typ string, fd FilterDef) bool {
	return typ == "Patient" && fd.Param == "patient"
}

// StandardFilter rewrites a filter on a Herald parameter into the standard
// search it means: on Patient, patient=Patient/123 is _id=123.
func StandardFilter(typ, param, value string) (string, string) {
	if typ == "Patient" && param == "patient" {
		if id, ok := fhir.PatientID(value, ""); ok {
			return "_id", id
		}
		return "_id", value
	}
	return param, value
}
