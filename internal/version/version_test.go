package version

import (
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String(); "" when an error is expected
		wantErr string
	}{
		{in: "1.2.3", want: "1.2.3"},
		{in: " 1.2.3 ", want: "1.2.3"},
		{in: "2024.01.05.120000", want: "2024.01.05.120000"},
		{in: "1.0.0.beta1", want: "1.0.0.beta1"},
		{in: "1.0-rc1", want: "1.0-rc1"},
		{in: "7", want: "7"},
		{in: "", wantErr: `"" is not a version`},
		{in: "x", wantErr: `"x" is not a version`},
		{in: "v1.2", wantErr: `"v1.2" is not a version`},
		{in: "1..2", wantErr: `"1..2" is not a version`},
		{in: "1.2.", wantErr: `"1.2." is not a version`},
		{in: "1.2 3", wantErr: `"1.2 3" is not a version`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			v, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Parse(%q) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if v.String() != tc.want {
				t.Errorf("String() = %q, want %q", v.String(), tc.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.2.3", "1.2.3", 0},
		{"1.0", "1.0.0", 0},
		{"1", "1.0.0.0", 0},
		{"01.2", "1.2", 0},
		{"1.2.3", "1.2.4", -1},
		{"1.10", "1.9", 1},
		{"2", "1.99.99", 1},
		{"1.0.0.beta1", "1.0.0", -1},
		{"1.0.0.beta1", "1.0.0.beta2", -1},
		{"1.0.0.alpha", "1.0.0.beta", -1},
		{"1.0.0.beta", "0.9", 1},
		{"1.0.beta", "1.0.0.beta", 0},
		{"1.0-rc1", "1.0.pre.rc1", 0},
		{"1.0-rc1", "1.0", -1},
		{"2024.01.05.120000", "2024.01.05.093000", 1},
		{"2024.01.05.120000", "2024.1.6", -1},
		{"123456789012345678901234567890", "123456789012345678901234567891", -1},
	}
	for _, tc := range tests {
		t.Run(tc.a+"_"+tc.b, func(t *testing.T) {
			a, b := MustParse(tc.a), MustParse(tc.b)
			if got := Compare(a, b); got != tc.want {
				t.Errorf("Compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := Compare(b, a); got != -tc.want {
				t.Errorf("Compare(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
}

func TestVersionPrerelease(t *testing.T) {
	for in, want := range map[string]bool{"1.0": false, "1.0.0.beta1": true, "1.0-rc1": true, "2024.01.05": false} {
		if got := MustParse(in).Prerelease(); got != want {
			t.Errorf("Prerelease(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestConstraintsCheck(t *testing.T) {
	tests := []struct {
		constraint string
		match      []string
		noMatch    []string
	}{
		{"", []string{"0", "1.0", "99.0.beta"}, nil},
		{"1.2", []string{"1.2", "1.2.0"}, []string{"1.2.1", "1.1"}},
		{"= 1.2", []string{"1.2"}, []string{"1.3"}},
		{"!= 1.2", []string{"1.3", "1.1"}, []string{"1.2.0"}},
		{"> 1.2", []string{"1.2.1", "2"}, []string{"1.2", "1.1"}},
		{"< 1.2", []string{"1.1.9", "1.2.beta"}, []string{"1.2", "1.3"}},
		{">= 1.2", []string{"1.2", "1.3"}, []string{"1.1"}},
		{"<= 1.2", []string{"1.2", "1.1"}, []string{"1.2.1"}},
		{">= 1.2, < 2", []string{"1.2", "1.9.9"}, []string{"1.1", "2", "2.0.1"}},
		{">=1.2,<2", []string{"1.5"}, []string{"2.0"}},
		{"~> 1.2", []string{"1.2", "1.2.9", "1.9"}, []string{"1.1.9", "2.0", "2.0.beta1"}},
		{"~> 1.2.3", []string{"1.2.3", "1.2.10"}, []string{"1.2.2", "1.3", "1.3.0"}},
		{"~> 1", []string{"1", "1.9"}, []string{"0.9", "2"}},
		{"~> 1.9", []string{"1.9", "1.10"}, []string{"2.0"}},
		{"~> 2024.01", []string{"2024.01.05.120000"}, []string{"2025.01"}},
		{"~> 1.0.beta", []string{"1.0.beta", "1.0", "1.5"}, []string{"0.9", "2.0"}},
		{"~> 1.2, != 1.4", []string{"1.3", "1.5"}, []string{"1.4", "1.4.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.constraint, func(t *testing.T) {
			cs, err := ParseConstraints(tc.constraint)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tc.match {
				if !cs.Check(MustParse(v)) {
					t.Errorf("%q does not accept %s", tc.constraint, v)
				}
			}
			for _, v := range tc.noMatch {
				if cs.Check(MustParse(v)) {
					t.Errorf("%q accepts %s", tc.constraint, v)
				}
			}
		})
	}
}

func TestConstraintsString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"  ", ""},
		{"1.2", "= 1.2"},
		{">=1.2,<2", ">= 1.2, < 2"},
		{" ~>  1.2.3 ", "~> 1.2.3"},
	}
	for _, tc := range tests {
		cs, err := ParseConstraints(tc.in)
		if err != nil {
			t.Fatalf("ParseConstraints(%q): %v", tc.in, err)
		}
		if got := cs.String(); got != tc.want {
			t.Errorf("ParseConstraints(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		again, err := ParseConstraints(cs.String())
		if err != nil || again.String() != tc.want {
			t.Errorf("round trip of %q: %q, %v", tc.want, again.String(), err)
		}
	}
}

func TestParseConstraintsErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{">= x", `box_version ">= x": "x" is not a version`},
		{">= 1.2, < two", `box_version ">= 1.2, < two": "two" is not a version`},
		{"=> 1.2", `box_version "=> 1.2": "=> 1.2": unknown operator "=>" (want one of =, !=, >, <, >=, <=, ~>)`},
		{"~ 1.2", `unknown operator "~"`},
		{">=", `box_version ">=": ">=": no version after ">="`},
		{"1.2,", `box_version "1.2,": empty condition`},
		{">= 1.2 < 2", `"1.2 < 2" is not a version`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseConstraints(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConstraints(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestOrderSatisfiesNewer(t *testing.T) {
	if Order("1.10", "1.9") <= 0 || Order("bad!", "0.1") >= 0 || Order("1.0", "1.0.0") >= 0 || Order("a!", "b!") >= 0 {
		t.Error("Order")
	}
	cs, err := ParseConstraints(">= 1.2, < 2")
	if err != nil {
		t.Fatal(err)
	}
	if !Satisfies("1.5", cs) || Satisfies("2.0", cs) || Satisfies("x!", cs) || !Satisfies("x!", nil) {
		t.Error("Satisfies")
	}
	if !Newer("1.10", "1.9") || Newer("1.9", "1.10") || Newer("bad!", "1.0") || !Newer("1.0", "bad!") {
		t.Error("Newer")
	}
}

func TestOrder(t *testing.T) {
	// Order is Compare (RubyGems rules); what fetch
	// cannot parse comes first, in string order, and so does the shorter
	// spelling of an equal version, so the order is total.
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.2", "1.10", -1},
		{"2", "1.99.99", 1},
		{"1.0.0", "1.0.0.beta1", 1},
		{"1.0.1", "1.0", 1},
		{"2026.01.02.150405", "2026.01.02.150404", 1},
		{"1.0.alpha", "1.0.beta", -1},
		{"1.0-rc1", "1.0", -1},
		{"1.0", "1.0.0", -1},
		{"latest", "0.1", -1},
		{"_b", "latest", -1},
	} {
		if got := Order(tc.a, tc.b); got != tc.want {
			t.Errorf("Order(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Order(tc.b, tc.a); got != -tc.want {
			t.Errorf("Order(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
