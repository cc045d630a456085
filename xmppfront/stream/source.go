package stream

import (
	"bufio"
	"io"
)

// source is the byte reader under encoding/xml's Decoder. It counts the
// bytes of the current window (a header or one first-level element) and
// fails once the window's budget is spent, so an oversized element is cut
// off after at most max bytes instead of being buffered whole.
type source struct {
	br    *bufio.Reader
	n     int   // bytes handed out in the current window
	max   int   // budget of the current window
	limit error // error to return when the budget is spent
	err   error // first error handed to the decoder, kept to classify its failures
}

func (s *source) window(max int, limit error) {
	s.n, s.max, s.limit = 0, max, limit
}

func (s *source) ReadByte() (byte, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.n >= s.max {
		s.err = s.limit
		return 0, s.err
	}
	b, err := s.br.ReadByte()
	if err != nil {
		s.err = err
		return 0, err
	}
	s.n++
	return b, nil
}

// Read exists because encoding/xml asks for an io.Reader; the Decoder uses
// ReadByte when it is there, so this is only a correct fallback.
func (s *source) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.n >= s.max {
		s.err = s.limit
		return 0, s.err
	}
	if len(p) > s.max-s.n {
		p = p[:s.max-s.n]
	}
	n, err := s.br.Read(p)
	s.n += n
	if err != nil {
		s.err = err
	}
	return n, err
}

var _ io.ByteReader = (*source)(nil)
