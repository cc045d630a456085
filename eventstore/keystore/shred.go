package keystore

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// shredFS is the file system the key store's Pebble runs on: Remove
// overwrites a file with zeros and syncs it before unlinking, so that the
// bytes of a deleted key do not stay behind in the free blocks of the disk
// as far as the file system lets us reach them (see the package
// documentation for what lies below).
type shredFS struct{ vfs.FS }

const zeroChunk = 64 << 10

func (s shredFS) Remove(name string) error {
	if err := s.zero(name); err != nil {
		return err
	}
	return s.FS.Remove(name)
}

func (s shredFS) zero(name string) error {
	info, err := s.FS.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("keystore: shred %s: %w", name, err)
	}
	if info.IsDir() || info.Size() == 0 {
		return nil
	}
	f, err := s.FS.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("keystore: shred %s: %w", name, err)
	}
	zeros := make([]byte, min(info.Size(), zeroChunk))
	for off := int64(0); off < info.Size(); off += int64(len(zeros)) {
		n := min(int64(len(zeros)), info.Size()-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			f.Close()
			return fmt.Errorf("keystore: shred %s: %w", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keystore: shred %s: %w", name, err)
	}
	return f.Close()
}

// shredCleaner deletes obsolete files (through shredFS.Remove, by
// DeleteCleaner) and, by embedding ArchiveCleaner one level deeper, also
// carries Pebble's "needs file contents" marker. That marker is Pebble's
// only switch for WAL recycling, which would otherwise keep retired logs,
// with their old records in the tail, for reuse. ArchiveCleaner's own
// Clean is shadowed by DeleteCleaner's and never runs.
type shredCleaner struct {
	pebble.DeleteCleaner
	noRecycle
}

type noRecycle struct{ pebble.ArchiveCleaner }

func (shredCleaner) String() string { return "shred" }
