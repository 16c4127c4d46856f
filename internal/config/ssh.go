package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// SSH is how den's ssh connects to a machine (Vagrant's config.ssh).
type SSH struct {
	ForwardAgent bool     // forward the host's ssh agent (ssh -A)
	ForwardEnv   []string // host environment variables passed on to the guest
}

var sshSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "forward_agent"}, {Name: "forward_env"}},
}

// sshLayer is a validated ssh block; nil fields are unset.
type sshLayer struct {
	forwardAgent *bool
	forwardEnv   []string
	hasEnv       bool
}

// ssh decodes the ssh blocks of one layer (at most one).
func (l *loader) ssh(blocks hcl.Blocks) *sshLayer {
	s := &sshLayer{}
	for i, b := range blocks {
		if i > 0 {
			l.errorf(b.DefRange, "Duplicate ssh block", "Only one ssh block is allowed here; another is at %s.", loc(blocks[0].DefRange))
			continue
		}
		c, diags := b.Body.Content(sshSchema)
		l.diags = append(l.diags, diags...)
		if a := c.Attributes["forward_agent"]; a != nil {
			if v, ok := l.value(a, cty.Bool); ok {
				fa := v.True()
				s.forwardAgent = &fa
			}
		}
		if a := c.Attributes["forward_env"]; a != nil {
			if v, ok := l.value(a, cty.List(cty.String)); ok {
				s.hasEnv = true
				for _, e := range v.AsValueSlice() {
					name := e.AsString()
					if !envNameRE.MatchString(name) {
						l.errorf(a.Expr.Range(), "Invalid forward_env", "%q is not an environment variable name: use letters, digits and _, not starting with a digit.", name)
						continue
					}
					s.forwardEnv = append(s.forwardEnv, name)
				}
			}
		}
	}
	return s
}

// merge puts a layer's ssh settings over m's.
func (s *sshLayer) merge(m *SSH) {
	if s == nil {
		return
	}
	if s.forwardAgent != nil {
		m.ForwardAgent = *s.forwardAgent
	}
	if s.hasEnv {
		m.ForwardEnv = s.forwardEnv
	}
}
