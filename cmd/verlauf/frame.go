package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Streaming admin operations (export, import) carry files of any size, so
// after the JSON request line both sides speak frames:
//
//	frame = kind (1 byte) | length (uint32, big endian) | payload
//
// D is a piece of a file, E ends a file (client to server, import), P is a
// progress report in JSON, T the JSON trailer (an adminResponse) that ends
// the operation. A file's length need not be known in advance, and the
// trailer can carry an error found after the first byte was sent: that is
// why the file is framed rather than sent raw after a length.
const (
	frameData     = 'D'
	frameEnd      = 'E'
	frameProgress = 'P'
	frameTrailer  = 'T'

	// chunkSize is the data per D frame; maxFrame bounds what a reader
	// accepts, so a corrupt length cannot make it allocate gigabytes.
	chunkSize = 64 << 10
	maxFrame  = 1 << 20
)

var errFrame = errors.New("admin socket: bad frame")

func writeFrame(w io.Writer, kind byte, p []byte) error {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

func writeJSONFrame(w io.Writer, kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFrame(w, kind, b)
}

// readFrame returns the next frame; the payload is valid until the next
// call, as it reuses buf.
func readFrame(r *bufio.Reader, buf *[]byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: %d bytes", errFrame, n)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errFrame, io.ErrUnexpectedEOF)
	}
	return h[0], p, nil
}

// dataWriter cuts what is written into D frames.
type dataWriter struct{ w io.Writer }

func (d dataWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunkSize)
		if err := writeFrame(d.w, frameData, p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// fileReader reads the D frames of one file up to its E frame. Other
// frames in between are an error: the client sends files one after the
// other.
type fileReader struct {
	r    *bufio.Reader
	buf  []byte
	rest []byte
	done bool
}

func (f *fileReader) Read(p []byte) (int, error) {
	for len(f.rest) == 0 {
		if f.done {
			return 0, io.EOF
		}
		kind, b, err := readFrame(f.r, &f.buf)
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: connection ended inside a file", errFrame)
		}
		if err != nil {
			return 0, err
		}
		switch kind {
		case frameData:
			f.rest = b
		case frameEnd:
			f.done = true
		default:
			return 0, fmt.Errorf("%w: %q inside a file", errFrame, kind)
		}
	}
	n := copy(p, f.rest)
	f.rest = f.rest[n:]
	return n, nil
}

// idleConn gives every read and write its own deadline, so that a stream
// of any length may last as long as it keeps moving.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c idleConn) Read(p []byte) (int, error) {
	c.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(p)
}

func (c idleConn) Write(p []byte) (int, error) {
	c.SetWriteDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

// progress is a bar on the terminal, or nothing when the command's output
// goes to a file or a pipe (scripts and tests must not see escape codes).
type progress struct{ bar *progressbar.ProgressBar }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress returns a bar counting bytes (total known) or items (total
// -1: a count without an end) on stderr, if both stdout and stderr are
// terminals.
func newProgress(stdout, stderr io.Writer, total int64, bytes bool, what string) progress {
	if !isTerminal(stdout) || !isTerminal(stderr) {
		return progress{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionSetItsString("msgs"), progressbar.OptionShowIts())
	}
	return progress{bar: progressbar.NewOptions64(total, opts...)}
}

func (p progress) set(n int64) {
	if p.bar != nil {
		p.bar.Set64(n)
	}
}

func (p progress) describe(s string) {
	if p.bar != nil {
		p.bar.Describe(s)
	}
}

func (p progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
