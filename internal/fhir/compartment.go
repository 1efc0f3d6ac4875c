package fhir

// compartmentMembers are the elements whose reference puts a resource into a
// patient's compartment. Herald uses this deliberately small rule (the Patient
// itself, and resources whose subject or patient is that patient) so that
// patient-scoped tokens see only what unambiguously belongs to the patient.
var compartmentMembers = []string{"subject", "patient"}

// CompartmentPatients returns the ids of the patients whose compartment holds
// the resource. baseURL lets absolute references to this server count too.
func CompartmentPatients(r *Resource, id, baseURL string) []string {
	if r.Type == "Patient" {
		return []string{id}
	}
	var out []string
	for _, name := range compartmentMembers {
		ref, ok := r.root.Get(name).Get("reference").String()
		if !ok {
			continue
		}
		if pid, ok := PatientID(ref, baseURL); ok && !contains(out, pid) {
			out = append(out, pid)
		}
	}
	return out
}

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

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
