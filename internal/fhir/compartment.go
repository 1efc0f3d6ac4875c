package fhir

// PatientID returns the id in a reference to a Patient on this server (see
// LocalReference): "Patient/123", "Patient/123/_history/2" or
// "<baseURL>/Patient/123".
func PatientID(reference, baseURL string) (string, bool) {
	typ, id, ok := LocalReference(reference, baseURL)
	if !ok || typ != "Patient" {
		return "", false
	}
	return id, true
}
