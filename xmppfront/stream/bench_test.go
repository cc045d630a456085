package stream

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// BenchmarkNext parses a typical ~400-byte chat message (body, thread, chat
// state, receipt request, origin-id) from an endless stream.
func BenchmarkNext(b *testing.B) {
	r := openOn(b, io.MultiReader(strings.NewReader(c2sHeader), &repeatReader{s: chatMessage}), Limits{})
	b.SetBytes(int64(len(chatMessage)))
	b.ReportAllocs()
	start := processCPU(b)
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkRawTokens is the floor set by encoding/xml: tokenising the same
// input without building elements.
func BenchmarkRawTokens(b *testing.B) {
	d := xml.NewDecoder(&repeatReader{s: chatMessage})
	b.SetBytes(int64(len(chatMessage)))
	b.ReportAllocs()
	start := processCPU(b)
	for b.Loop() {
		for depth := 0; ; {
			tok, err := d.RawToken()
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := tok.(xml.StartElement); ok {
				depth++
			} else if _, ok := tok.(xml.EndElement); ok {
				if depth--; depth == 0 {
					break
				}
			}
		}
	}
	reportCPU(b, start)
}

func BenchmarkAppendStanza(b *testing.B) {
	el, err := open(b, chatMessage, Limits{}).Next()
	if err != nil {
		b.Fatal(err)
	}
	buf := el.AppendStanza(nil, NSServer)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	start := processCPU(b)
	for b.Loop() {
		buf = el.AppendStanza(buf[:0], NSServer)
	}
	reportCPU(b, start)
}

func BenchmarkWriteElement(b *testing.B) {
	el, err := open(b, chatMessage, Limits{}).Next()
	if err != nil {
		b.Fatal(err)
	}
	w := NewWriter(io.Discard)
	if err := w.WriteHeader(Header{Namespace: NSServer}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	start := processCPU(b)
	for b.Loop() {
		if err := w.WriteElement(el); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// reportCPU adds CPU time per operation and the stanza rate that CPU time
// allows on one core.
func reportCPU(b *testing.B, start time.Duration) {
	cpu := processCPU(b) - start
	if cpu <= 0 {
		return
	}
	perOp := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp, "cpu-ns/op")
	b.ReportMetric(1e9/perOp, "ops/cpu-s")
}
