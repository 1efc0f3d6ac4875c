package search

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCriteriaErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ, query, want string
	}{
		{"Encounter", "foo=bar", `unknown search parameter "foo" for Encounter`},
		{"Encounter", "status:below=finished", "modifier :below is not supported for status"},
		{"Encounter", "status:in=http://x.org/vs", "modifier :in is not supported for status"},
		{"Encounter", "status:exact=finished", "modifier :exact is not supported for status"},
		{"Patient", "gender:contains=m", "modifier :contains is not supported for gender"},
		{"Patient", "name:not=x", "modifier :not is not supported for name"},
		{"Patient", "birthdate:exact=2020", "modifier :exact is not supported for birthdate"},
		{"Patient", "identifier:text=x", "modifier :text is not supported for identifier"},
		{"Encounter", "status:=finished", "empty modifier"},
		{"Encounter", "subject:Practitioner=1", "modifier :Practitioner is not supported for subject"},
		{"Encounter", "date=ap2020", "prefix ap is not supported for date"},
		{"Encounter", "date=xx2020", `unknown prefix "xx"`},
		{"Encounter", "date=yesterday", `unknown prefix "ye"`},
		{"Encounter", "date=2020-13", "is not a FHIR date"},
		{"Encounter", "date=2020-02-30", "is not a FHIR date"},
		{"Encounter", "date=2020-01-01T10", "is not a FHIR date"},
		{"DocumentReference", "relationship=x", `search parameter "relationship" for DocumentReference is not supported: component relatesto`},
		{"Observation", "code-value-quantity=http://loinc.org|1", `composite value "http://loinc.org|1" needs 2 parts separated by '$'`},
		{"Observation", "code-value-quantity=http://loinc.org|1$abc", `component value-quantity: unknown prefix "ab"`},
		{"Observation", "code-value-quantity=$5", "has an empty part"},
		{"Observation", "code-value-quantity:missing=true", "modifier :missing is not supported for code-value-quantity"},
		{"Patient", "deceased=true", `search parameter "deceased" for Patient is not supported`},
		{"Patient", "_text=x", `search parameter "_text" for Patient is not supported`},
		{"Encounter", "subject.name=peter", `chained parameter "subject.name" is not supported`},
		{"Encounter", "subject:Patient.name=peter", "chained parameter"},
		{"Encounter", "_has:Observation:encounter:code=1", "reverse chaining (_has) is not supported"},
		{"Encounter", "_count=10", "result parameter _count is not allowed in criteria"},
		{"Encounter", "_include=Encounter:patient", "result parameter _include"},
		{"Encounter", "status", `search term "status" has no '='`},
		{"Encounter", "status=", "search parameter status has no value"},
		{"Encounter", "status=a,,b", "empty value"},
		{"Encounter", "=x", "has no parameter name"},
		{"Encounter", "patient=Practitioner/1", "Practitioner is not a target type of patient (Group, Patient)"},
		{"Encounter", "patient=Foo/1", "does not name a resource type"},
		{"Encounter", "patient=a/b/c", "is not a reference"},
		{"Encounter", "patient=Patient/1/x", "is not a reference"},
		{"Encounter", "subject:Patient=Group/1", "contradicts the modifier :Patient"},
		{"Encounter", "status:missing=maybe", "status:missing takes true or false"},
		{"Encounter", "status:missing=true,false", "status:missing takes true or false"},
		{"Observation", "value-quantity=1.2.3", `"1.2.3" is not a decimal number`},
		{"Observation", "value-quantity=abc", `unknown prefix "ab"`},
		{"Observation", "value-quantity=5|http://unitsofmeasure.org", "is not number, number|system|code"},
		{"Observation", "value-quantity=5|http://unitsofmeasure.org|", "has a system but no code"},
		{"Observation", "value-quantity=1e999", "is not a decimal number"},
		{"Observation", "value-quantity=NaN", "is not a decimal number"},
		{"Observation", "code=a|b|c", "more than one unescaped '|'"},
		{"Observation", "code=|", "neither system nor code"},
		{"Patient", "identifier:of-type=a|b", ":of-type takes system|code|value"},
		{"Encounter", "%zz=1", "bad percent-encoding"},
		{"Encounter", "status=%G1", "bad percent-encoding"},
		{"Nope", "status=x", `unknown resource type "Nope"`},
		{"Resource", "_id=x", `unknown resource type "Resource"`},
	} {
		_, err := ParseCriteria(tc.typ, tc.query)
		require.Error(t, err, "%s?%s", tc.typ, tc.query)
		require.Contains(t, err.Error(), tc.want, "%s?%s", tc.typ, tc.query)
	}
}

func TestParseQualified(t *testing.T) {
	t.Parallel()
	c, err := ParseQualified("Encounter?patient=Patient/123")
	require.NoError(t, err)
	require.Equal(t, "Encounter", c.ResourceType())
	require.Len(t, c.Clauses(), 1)

	c, err = ParseQualified("Encounter")
	require.NoError(t, err)
	require.Empty(t, c.Clauses())
	ok, err := c.Match(load(t, "Encounter-example"))
	require.NoError(t, err)
	require.True(t, ok)

	c, err = ParseQualified("https://fhir.example.org/r4/Encounter?status=finished")
	require.NoError(t, err)
	require.Equal(t, "Encounter", c.ResourceType())

	_, err = ParseQualified("?status=finished")
	require.ErrorContains(t, err, "no resource type")
	_, err = ParseQualified("Encounterz?status=finished")
	require.ErrorContains(t, err, `unknown resource type "Encounterz"`)
}

func TestClauses(t *testing.T) {
	t.Parallel()
	c, err := ParseQualified(`Encounter?patient=Patient/123,Patient/456&status:not=finished&Encounter.class=http://x.org|A\,B&date=ge2020,lt2019&subject:Patient=9`)
	require.NoError(t, err)
	cls := c.Clauses()
	require.Len(t, cls, 5)

	require.Equal(t, "patient", cls[0].Code)
	require.Equal(t, "", cls[0].Modifier)
	require.Equal(t, []string{"Patient/123", "Patient/456"}, cls[0].Values)
	require.Equal(t, TypeReference, cls[0].Param.Type)
	keys, ok := cls[0].ReferenceKeys()
	require.True(t, ok)
	require.Equal(t, []string{"Patient/123", "Patient/456"}, keys)

	require.Equal(t, "status", cls[1].Code)
	require.Equal(t, "not", cls[1].Modifier)
	require.Equal(t, []string{"finished"}, cls[1].Values)
	_, ok = cls[1].ReferenceKeys()
	require.False(t, ok)

	require.Equal(t, "class", cls[2].Code, "the Type. prefix is dropped")
	require.Equal(t, []string{"http://x.org|A,B"}, cls[2].Values)

	require.Equal(t, []string{"ge", "lt"}, cls[3].Comparators())
	require.Nil(t, cls[1].Comparators())

	keys, ok = cls[4].ReferenceKeys()
	require.True(t, ok)
	require.Equal(t, []string{"Patient/9"}, keys)

	// Clauses returns copies.
	cls[0].Values[0] = "changed"
	require.Equal(t, "Patient/123", c.Clauses()[0].Values[0])

	require.Equal(t, `Encounter?patient=Patient/123,Patient/456&status:not=finished&class=http://x.org|A\,B&date=ge2020,lt2019&subject:Patient=9`, c.String())

	// A bare id on a parameter with several target types has no single key.
	c, err = ParseQualified("Encounter?patient=123")
	require.NoError(t, err)
	_, ok = c.Clauses()[0].ReferenceKeys()
	require.False(t, ok)
	// With a single target type it does.
	c, err = ParseQualified("Patient?organization=https://x.org/fhir/Organization/o1/_history/3")
	require.NoError(t, err)
	keys, ok = c.Clauses()[0].ReferenceKeys()
	require.True(t, ok)
	require.Equal(t, []string{"Organization/o1"}, keys)
}

func TestStringRoundTrip(t *testing.T) {
	t.Parallel()
	for _, q := range []string{
		"Patient?name=van%20der%20Berg&birthdate=ge2020-01-01T00:00:00+01:00",
		`Observation?code=http://loinc.org|1\|2,abc&value-quantity=5.4|http://unitsofmeasure.org|mg`,
		"Encounter?status:missing=true",
		"Patient?name=%C3%A9%26%3D%23%25",
	} {
		c, err := ParseQualified(q)
		require.NoError(t, err, q)
		c2, err := ParseQualified(c.String())
		require.NoError(t, err, c.String())
		require.Equal(t, c.String(), c2.String())
		require.Equal(t, c.Clauses(), c2.Clauses())
	}
}

func TestFold(t *testing.T) {
	t.Parallel()
	require.Equal(t, "benedicte du marche", fold("Bénédicte du MARCHÉ"))
	require.Equal(t, "strasse aeoe ij", fold("Straße ÆŒ Ĳ"))
	require.Equal(t, "jose", fold("Jose\u0301"))
	require.Equal(t, "σοφια", fold("ΣΟΦΙΑ"))
	require.True(t, foldPrefix("Ærø", "aer"))
	require.True(t, foldEqual("Łódź", "lodz"))
	require.False(t, foldEqual("Łódź", "lod"))
	require.True(t, foldContains("Müller-Lüdenscheidt", "ludens"))
	require.False(t, foldContains("abc", "abd"))
	require.True(t, foldContains("abc", ""))
}

func TestParseDateIntervals(t *testing.T) {
	t.Parallel()
	iv, ok := parseDate("2013-04-02T09:30:10+01:00")
	require.True(t, ok)
	require.Equal(t, int64(1_000_000), iv.hi-iv.lo)
	iv, ok = parseDate("2013-04-02T09:30:10.12Z")
	require.True(t, ok)
	require.Equal(t, int64(10_000), iv.hi-iv.lo)
	iv, ok = parseDate("2024-02")
	require.True(t, ok)
	require.Equal(t, int64(29*24*3600*1_000_000), iv.hi-iv.lo)
	for _, bad := range []string{"", "2013-", "2013-4", "2013-04-02T", "2013-04-02T09", "2013-04-02T09:30:10.", "2013-04-02T09:30+1", "2013-04-02 09:30", "2013-04-02T24:00", "201a", "2013-04-02T09:30:10Z!"} {
		_, ok := parseDate(bad)
		require.False(t, ok, bad)
	}
}
