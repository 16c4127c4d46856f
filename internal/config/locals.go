package config

import (
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// locals evaluates the locals blocks of den.hcl's top level, in file
// order, into local.NAME for every expression of the file; a local may use
// the locals written before it. locals blocks belong at the top level only.
func (l *loader) locals(blocks hcl.Blocks, top bool) {
	if !top {
		for _, b := range blocks {
			l.errorf(b.DefRange, "Misplaced locals block", "locals blocks go at the top level of %s, where every machine can use them.", b.DefRange.Filename)
		}
		return
	}
	vals := map[string]cty.Value{}
	seen := map[string]hcl.Range{}
	if l.ctx.Variables == nil {
		l.ctx.Variables = map[string]cty.Value{}
	}
	l.ctx.Variables["local"] = cty.EmptyObjectVal
	for _, b := range blocks {
		attrs, diags := b.Body.JustAttributes()
		l.diags = append(l.diags, diags...)
		list := make([]*hcl.Attribute, 0, len(attrs))
		for _, a := range attrs {
			list = append(list, a)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Range.Start.Byte < list[j].Range.Start.Byte })
		for _, a := range list {
			if first, dup := seen[a.Name]; dup {
				l.errorf(a.NameRange, "Duplicate local", "local.%s is already defined at %s.", a.Name, loc(first))
				continue
			}
			seen[a.Name] = a.NameRange
			v, diags := a.Expr.Value(l.ctx)
			l.diags = append(l.diags, diags...)
			if diags.HasErrors() {
				continue
			}
			vals[a.Name] = v
			l.ctx.Variables["local"] = cty.ObjectVal(vals)
		}
	}
}
