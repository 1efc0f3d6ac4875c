package search

// Members returns the top-level members of a resource of typ that
// matching it by c (nil: no criteria) and reading its sort keys for the
// codes sorts look at: the first steps of their parameters' paths (a
// composite's components are read within the elements its own paths
// select), with resourceType and id. Nil means every member may be read.
func Members(typ string, c *Criteria, sorts []string) map[string]bool {
	out := map[string]bool{"resourceType": true, "id": true}
	add := func(p *Param) bool {
		if p == nil {
			return false
		}
		for i := range p.paths {
			if len(p.paths[i].steps) == 0 {
				return false // the resource itself
			}
			out[p.paths[i].steps[0].name] = true
		}
		return true
	}
	if c != nil {
		if c.resourceType != typ {
			return nil
		}
		for i := range c.clauses {
			if !add(c.clauses[i].p) {
				return nil
			}
		}
	}
	for _, code := range sorts {
		if !add(lookup(typ, code)) {
			return nil
		}
	}
	return out
}
