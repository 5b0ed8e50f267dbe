package sbom

import (
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// commonLicenses are the SPDX identifiers written as a license id. The
// CycloneDX schema checks an id against the whole SPDX list, which Airlock
// does not carry; a license outside this short list is still recorded,
// as a name, or as an expression when it is one. The tests check every
// entry against the SPDX list the CycloneDX schema ships.
func commonLicenses() []string {
	return []string{
		"0BSD", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-2.0", "Artistic-2.0",
		"BSD-2-Clause", "BSD-3-Clause", "BSL-1.0", "CC-BY-3.0", "CC-BY-4.0",
		"CC-BY-NC-4.0", "CC-BY-NC-ND-4.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0",
		"CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "CDLA-Permissive-1.0",
		"CDLA-Permissive-2.0", "CDLA-Sharing-1.0", "EPL-2.0", "GPL-2.0-only",
		"GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC",
		"LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later",
		"MIT", "MIT-0", "MPL-2.0", "ODbL-1.0", "ODC-By-1.0", "PDDL-1.0",
		"Unlicense", "Zlib",
	}
}

// spdxID returns the canonical spelling of a known SPDX identifier (SPDX
// matches identifiers case-insensitively).
func spdxID(s string) (string, bool) {
	for _, id := range commonLicenses() {
		if strings.EqualFold(s, id) {
			return id, true
		}
	}
	return "", false
}

// licenses maps a license string from the release file to CycloneDX:
// a known SPDX identifier as an id, a compound SPDX expression (AND, OR,
// WITH, parentheses) or a LicenseRef as an expression, anything else
// ("proprietary", "Llama 3 Community License") as a name. All are
// declared licenses: they are what the release file states.
func licenses(s string) *cdx.Licenses {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	declared := cdx.LicenseAcknowledgementDeclared
	if id, ok := spdxID(s); ok {
		return &cdx.Licenses{{License: &cdx.License{ID: id, Acknowledgement: declared}}}
	}
	if isExpression(s) {
		return &cdx.Licenses{{Expression: s, Acknowledgement: &declared}}
	}
	return &cdx.Licenses{{License: &cdx.License{Name: s, Acknowledgement: declared}}}
}

// isExpression reports whether s reads as an SPDX license expression
// that is more than one identifier: identifiers joined by AND, OR or WITH,
// with parentheses (SPDX 2.3 Annex D), or a single LicenseRef.
func isExpression(s string) bool {
	fields := strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(s))
	compound := len(fields) == 1 && strings.HasPrefix(s, "LicenseRef-")
	for _, f := range fields {
		switch f {
		case "AND", "OR", "WITH":
			compound = true
		case "(", ")":
		default:
			if !isIDString(strings.TrimSuffix(f, "+")) {
				return false
			}
		}
	}
	return compound
}

// isIDString reports whether s is SPDX's idstring: letters, digits, '-'
// and '.', with an optional LicenseRef-/DocumentRef- prefix and colon.
func isIDString(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}
