package userdata

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"

	"verlauf.im/verlauf/domain"
)

// spool holds a user's validated history between validation and writing,
// so that a million messages are checked before anything is written
// without holding them in memory. It is a temporary file sealed under a
// key that lives in this process only, so the clear history an import
// carries does not land on the disk; the file is removed when closed.
type spool struct {
	f    *os.File
	w    *bufio.Writer
	aead interface {
		Seal(dst, nonce, plain, ad []byte) []byte
	}
	key   []byte
	n     uint64
	count int
}

type spoolEntry struct {
	id      uuid.UUID
	at      time.Time
	dir     domain.Direction
	partner string
	stanza  []byte
}

func newSpool(dir string) (*spool, error) {
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "verlauf-import-*")
	if err != nil {
		return nil, fmt.Errorf("userdata: spool: %w", err)
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, 64<<10), aead: aead, key: key}, nil
}

func (s *spool) nonce(i uint64) []byte {
	n := make([]byte, chacha20poly1305.NonceSizeX)
	binary.BigEndian.PutUint64(n, i)
	return n
}

func (s *spool) add(e spoolEntry) error {
	plain := make([]byte, 0, 16+8+1+2+len(e.partner)+len(e.stanza))
	plain = append(plain, e.id[:]...)
	plain = binary.BigEndian.AppendUint64(plain, uint64(e.at.UnixNano()))
	plain = append(plain, byte(e.dir))
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(e.partner)))
	plain = append(plain, e.partner...)
	plain = append(plain, e.stanza...)
	sealed := s.aead.Seal(nil, s.nonce(s.n), plain, nil)
	s.n++
	s.count++
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(sealed)))
	if _, err := s.w.Write(l[:]); err != nil {
		return err
	}
	_, err := s.w.Write(sealed)
	return err
}

// each reads the entries back in order.
func (s *spool) each(fn func(spoolEntry) error) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	aead, err := chacha20poly1305.NewX(s.key)
	if err != nil {
		return err
	}
	r := bufio.NewReaderSize(s.f, 64<<10)
	var buf []byte
	for i := uint64(0); i < s.n; i++ {
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return fmt.Errorf("userdata: spool: %w", err)
		}
		buf = append(buf[:0], make([]byte, binary.BigEndian.Uint32(l[:]))...)
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("userdata: spool: %w", err)
		}
		plain, err := aead.Open(nil, s.nonce(i), buf, nil)
		if err != nil || len(plain) < 27 {
			return errors.New("userdata: spool: damaged")
		}
		var e spoolEntry
		copy(e.id[:], plain)
		e.at = time.Unix(0, int64(binary.BigEndian.Uint64(plain[16:]))).UTC()
		e.dir = domain.Direction(plain[24])
		pl := int(binary.BigEndian.Uint16(plain[25:]))
		if len(plain) < 27+pl {
			return errors.New("userdata: spool: damaged")
		}
		e.partner = string(plain[27 : 27+pl])
		e.stanza = plain[27+pl:]
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (s *spool) close() {
	clear(s.key)
	s.f.Close()
	os.Remove(s.f.Name())
}
