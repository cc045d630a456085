package stream

import "fmt"

// Limits bound what a Reader accepts from its peer. A zero field takes its
// default, so Limits{} is the recommended configuration.
type Limits struct {
	// MaxStanzaSize is the largest first-level element, in bytes from its
	// '<' to its final '>'. Default 256 KiB, in line with what public
	// servers accept and far above any legitimate stanza except large
	// in-band file transfer chunks.
	MaxStanzaSize int
	// MaxHeaderSize bounds the bytes read for the stream header, including
	// the XML declaration and any whitespace before it. Default 8 KiB.
	MaxHeaderSize int
	// MaxDepth is the deepest nesting allowed inside a first-level element;
	// the element itself is depth 1. Default 64: real stanzas (forwarded
	// carbons inside MAM results, XHTML-IM) stay well below 20.
	MaxDepth int
	// MaxAttrs is the most attributes, namespace declarations included, one
	// element may carry. Default 64.
	MaxAttrs int
	// MaxNameLen bounds element and attribute names (prefix included).
	// Default 256.
	MaxNameLen int
	// MaxAttrValueLen bounds a single attribute value after unescaping.
	// Default 16 KiB; the stanza size bounds it anyway, this catches
	// absurd values early in the stanza's life.
	MaxAttrValueLen int
	// MaxNamespaces bounds the namespace declarations in scope at once,
	// the header's included. Default 128. Prefix lookups scan them, so
	// without a bound a stanza could make every lookup slow.
	MaxNamespaces int
}

// Defaults for the zero fields of Limits.
const (
	DefaultMaxStanzaSize   = 256 << 10
	DefaultMaxHeaderSize   = 8 << 10
	DefaultMaxDepth        = 64
	DefaultMaxAttrs        = 64
	DefaultMaxNameLen      = 256
	DefaultMaxAttrValueLen = 16 << 10
	DefaultMaxNamespaces   = 128
)

// withDefaults fills the zero (or negative) fields.
func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxStanzaSize, DefaultMaxStanzaSize)
	def(&l.MaxHeaderSize, DefaultMaxHeaderSize)
	def(&l.MaxDepth, DefaultMaxDepth)
	def(&l.MaxAttrs, DefaultMaxAttrs)
	def(&l.MaxNameLen, DefaultMaxNameLen)
	def(&l.MaxAttrValueLen, DefaultMaxAttrValueLen)
	def(&l.MaxNamespaces, DefaultMaxNamespaces)
	return l
}

// LimitError reports input that exceeds one of the Limits. It matches
// ErrLimit with errors.Is and maps to the policy-violation condition.
type LimitError struct {
	// Limit names the Limits field that was exceeded.
	Limit string
	// Max is its value.
	Max int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("stream: %s of %d exceeded", e.Limit, e.Max)
}

// Is makes errors.Is(err, ErrLimit) true for every LimitError.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }
