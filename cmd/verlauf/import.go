package main

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"verlauf.im/verlauf/userdata"
)

const importUsage = `usage: verlauf import [--password-prompt] [--merge] [--config FILE] FILE…

Imports XEP-0227 files (as verlauf, Prosody's mod_storage_xep0227 and
ejabberd's export_piefxis write them) into the running server. Each file
is imported whole or not at all: a malformed file is refused with the line
and the element at fault, and nothing of it is written. The command
returns when the imported history can be found by archive queries.

Files whose root element is <host> are the per-host files that an
ejabberd export's main file includes (<xi:include href=…/>); give them
with the main file, they are matched by name.

  --password-prompt  the user's own import of a file with one user: asks
                     for their password, checks it against the file's
                     credentials (or creates the account with it), and
                     seals the history under the user's keys at once.
                     Without it (an operator's bulk import) accounts are
                     created from the SCRAM verifiers in the file, and
                     their history stays sealed under interim keys held
                     by the server until each user's first login.
  --merge            write into accounts that exist already
`

// importFile names one file of an import request.
type importFile struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Include bool   `json:"include,omitempty"`
}

// importResult is the trailer of an import.
type importResult struct {
	Users []importedUser `json:"users"`
	// UnusedIncludes are <host> files given but not included by the main
	// file.
	UnusedIncludes []string `json:"unused_includes,omitempty"`
}

type importedUser struct {
	JID     string         `json:"jid"`
	Created bool           `json:"created"`
	Counts  map[string]int `json:"counts"`
	Skipped map[string]int `json:"skipped,omitempty"`
	// Interim says the history is sealed under interim keys until the
	// user's first login. The keys themselves never leave the server.
	Interim bool `json:"interim,omitempty"`
}

type fileError struct {
	File    string `json:"file,omitempty"`
	Element string `json:"element,omitempty"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// importProgress is the payload of the import's P frames.
type importProgress struct {
	User     string `json:"user"`
	Messages int    `json:"messages"`
	// Indexing: the user's history is written and the server waits for
	// the archive index, so that the import ends when it is searchable.
	Indexing bool `json:"indexing,omitempty"`
}

type localFile struct {
	path string
	size int64
}

func cmdImport(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage) }
	prompt := fs.Bool("password-prompt", false, "the user's own import: ask for their password")
	merge := fs.Bool("merge", false, "write into accounts that exist already")
	configPath := fs.String("config", "", "the server's TOML config file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errors.New("import: no file given")
	}
	var mains, includes []localFile
	seen := map[string]string{}
	for _, p := range pos {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("import: %s is not a file", p)
		}
		f := localFile{path: p, size: st.Size()}
		if rootElement(p) == "host" {
			base := filepath.Base(p)
			if other, ok := seen[base]; ok {
				return fmt.Errorf("import: %s and %s have the same name; includes are matched by name", other, p)
			}
			seen[base] = p
			includes = append(includes, f)
		} else {
			mains = append(mains, f)
		}
	}
	if len(mains) == 0 {
		return errors.New("import: no main file: every file given is a <host> file, which a main file includes")
	}
	if *prompt && len(mains) != 1 {
		return fmt.Errorf("import: --password-prompt imports one user's file; %d files given", len(mains))
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	var password string
	if *prompt {
		if password, err = readPassword(stdin, stderr, false); err != nil {
			return err
		}
	}
	sock := adminSocketPath(cfg)
	var failed []string
	for _, m := range mains {
		res, err := importOne(ctx, sock, m, includes, password, *merge, stdout, stderr)
		if res != nil {
			printImport(stdout, m.path, res)
		}
		if err != nil {
			if len(mains) == 1 {
				return err
			}
			fmt.Fprintln(stderr, "verlauf:", err)
			failed = append(failed, m.path)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("import: %d of %d files failed: %s", len(failed), len(mains), strings.Join(failed, ", "))
	}
	return nil
}

// rootElement is the local name of a file's root element, or "" if the
// first 64 KiB do not tell (the server then says what is wrong with it).
func rootElement(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	d := xml.NewDecoder(io.LimitReader(f, 64<<10))
	for {
		t, err := d.RawToken()
		if err != nil {
			return ""
		}
		if se, ok := t.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

func printImport(w io.Writer, file string, r *importResult) {
	for _, u := range r.Users {
		how := "into the existing account"
		if u.Created {
			how = "as a new account"
		}
		fmt.Fprintf(w, "imported %s from %s %s\n", u.JID, file, how)
		fmt.Fprintf(w, "  %s\n", formatCounts(u.Counts))
		if len(u.Skipped) > 0 {
			fmt.Fprintf(w, "  skipped (not kept by verlauf): %s\n", formatCounts(u.Skipped))
		}
		if u.Interim {
			fmt.Fprintf(w, "  history sealed under interim keys held by the server until %s logs in\n", u.JID)
		}
	}
	for _, f := range r.UnusedIncludes {
		fmt.Fprintf(w, "warning: %s was given but %s does not include it\n", f, file)
	}
}

// importOne streams one main file and every include to the server and
// returns what the server imported.
func importOne(ctx context.Context, sock string, main localFile, includes []localFile, password string, merge bool, stdout, stderr io.Writer) (*importResult, error) {
	files := append(append([]localFile(nil), includes...), main)
	req := adminRequest{Op: "import", Password: password, Merge: merge}
	var total int64
	for i, f := range files {
		req.Files = append(req.Files, importFile{Name: filepath.Base(f.path), Size: f.size, Include: i < len(includes)})
		total += f.size
	}
	c, stop, err := adminDial(ctx, sock, req)
	if err != nil {
		return nil, err
	}
	defer stop()
	defer c.Close()
	bar := newProgress(stdout, stderr, total, true, "uploading "+filepath.Base(main.path))
	up := make(chan error, 1)
	go func() { up <- upload(c, files, bar) }()

	br := bufio.NewReaderSize(c, 4096)
	var trailer adminResponse
	var buf []byte
	op := "import " + main.path
	for {
		kind, p, err := readFrame(br, &buf)
		if err != nil {
			c.Close()
			if uerr := <-up; errors.Is(uerr, errLocalFile) {
				return nil, fmt.Errorf("%s: %w", op, uerr)
			}
			return nil, streamError(ctx, "import", err)
		}
		if kind == frameProgress {
			var ip importProgress
			if json.Unmarshal(p, &ip) == nil {
				if ip.Indexing {
					bar.describe(fmt.Sprintf("indexing %s's history", ip.User))
				} else {
					bar.describe(fmt.Sprintf("writing %s: %d messages", ip.User, ip.Messages))
				}
			}
			continue
		}
		if kind != frameTrailer {
			return nil, fmt.Errorf("%s: %w: %q", op, errFrame, kind)
		}
		if err := json.Unmarshal(p, &trailer); err != nil {
			return nil, fmt.Errorf("%s: admin socket: %w", op, err)
		}
		break
	}
	// The server may have answered before reading everything (a file
	// refused at its first lines): stop uploading.
	c.Close()
	<-up
	bar.finish()
	if trailer.Error != "" {
		return trailer.Import, responseError("import", main.path, trailer)
	}
	if trailer.Import == nil {
		return nil, fmt.Errorf("%s: the server sent no report", op)
	}
	return trailer.Import, nil
}

// errLocalFile marks an upload that failed on this side (a file that
// cannot be read), as opposed to a connection the server closed.
var errLocalFile = errors.New("local file")

// upload sends each file as D frames closed by an E frame.
func upload(c net.Conn, files []localFile, bar progress) error {
	bw := bufio.NewWriterSize(c, chunkSize+5)
	var sent int64
	for _, lf := range files {
		f, err := os.Open(lf.path)
		if err != nil {
			return fmt.Errorf("%w: %w", errLocalFile, err)
		}
		buf := make([]byte, chunkSize)
		for {
			n, rerr := f.Read(buf)
			if n > 0 {
				if err := writeFrame(bw, frameData, buf[:n]); err != nil {
					f.Close()
					return err
				}
				sent += int64(n)
				bar.set(sent)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				f.Close()
				return fmt.Errorf("%w: reading %s: %w", errLocalFile, lf.path, rerr)
			}
		}
		f.Close()
		if err := writeFrame(bw, frameEnd, nil); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// serveImport receives the included files into spools, streams the main
// file straight into userdata.Import, and answers with a T frame holding
// the report or the error. P frames report the history being written.
func (s *adminServer) serveImport(ctx context.Context, c net.Conn, br *bufio.Reader, req adminRequest) adminResponse {
	bw := bufio.NewWriterSize(idleConn{c, adminIdle}, 4096)
	resp := s.doImport(ctx, br, bw, req)
	if err := writeJSONFrame(bw, frameTrailer, resp); err == nil {
		bw.Flush()
	}
	return resp
}

func (s *adminServer) doImport(ctx context.Context, br *bufio.Reader, bw *bufio.Writer, req adminRequest) adminResponse {
	if s.data.Store == nil {
		return adminResponse{Error: "import is not available on this server"}
	}
	n := len(req.Files)
	if n == 0 || req.Files[n-1].Include {
		return adminResponse{Error: "bad request: no main file"}
	}
	main := req.Files[n-1].Name
	if err := os.MkdirAll(s.spoolDir, 0o700); err != nil {
		return adminResponse{Error: err.Error()}
	}
	spools := map[string]*spool{}
	defer func() {
		for _, sp := range spools {
			sp.close()
		}
	}()
	for _, f := range req.Files[:n-1] {
		if !f.Include {
			return adminResponse{Error: "bad request: one main file per import, last"}
		}
		if _, ok := spools[f.Name]; ok {
			return adminResponse{Error: fmt.Sprintf("bad request: two includes named %s", f.Name)}
		}
		sp, err := newSpool(s.spoolDir, &fileReader{r: br})
		if err != nil {
			return adminResponse{Error: fmt.Sprintf("receiving %s: %v", f.Name, err)}
		}
		spools[f.Name] = sp
	}
	used := map[string]bool{}
	rep, err := userdata.Import(ctx, &fileReader{r: br}, s.data, userdata.ImportOptions{
		Password:      req.Password,
		Domain:        s.domain,
		MergeExisting: req.Merge,
		// Only the base name of an href counts, and only files the
		// operator gave: an href cannot reach anything else on the disk.
		Include: func(href string) (userdata.ReadCloser, error) {
			name := path.Base(href)
			sp, ok := spools[name]
			if !ok {
				return nil, fmt.Errorf("%s was not given with %s", name, main)
			}
			used[name] = true
			return sp.open(), nil
		},
		SpoolDir: s.spoolDir,
		Progress: func(user string, messages int) {
			writeJSONFrame(bw, frameProgress, importProgress{User: user, Messages: messages})
			bw.Flush()
		},
		Indexing: func(user string) {
			writeJSONFrame(bw, frameProgress, importProgress{User: user, Indexing: true})
			bw.Flush()
		},
	})
	res := &importResult{}
	for _, u := range rep.Users {
		res.Users = append(res.Users, importedUser{JID: u.JID, Created: u.Created, Counts: u.Counts, Skipped: u.Skipped, Interim: u.Interim})
	}
	for name := range spools {
		if !used[name] {
			res.UnusedIncludes = append(res.UnusedIncludes, name)
		}
	}
	sort.Strings(res.UnusedIncludes)
	if err == nil {
		return adminResponse{Import: res}
	}
	resp := adminResponse{Error: err.Error()}
	if len(res.Users) > 0 {
		resp.Import = res
	}
	var fe *userdata.FileError
	switch {
	case errors.As(err, &fe):
		resp.Code = codeMalformed
		resp.FileError = &fileError{File: fe.File, Element: fe.Element, Line: fe.Line, Message: fe.Err.Error()}
	case errors.Is(err, userdata.ErrWrongPassword):
		// No throttle here: the file, which the operator holds, already
		// allows an offline guess at the password.
		resp.Code = codeWrongPassword
		resp.Error = "the password does not match the credentials in the file"
	case errors.Is(err, userdata.ErrExists):
		resp.Code = codeExists
		resp.Error = err.Error() + " (--merge writes into existing accounts)"
	case errors.Is(err, userdata.ErrNoCredentials):
		resp.Error = err.Error() + " (--password-prompt creates the account with the user's password)"
	}
	return resp
}

// spool holds an included file while an import runs. It is unlinked as
// soon as it is created, so nothing is left on disk after a crash, and
// encrypted under a key that exists only in memory, because it holds
// someone's history in clear. CTR without a MAC is enough: the spool is
// read back by this process only, and whoever could change it under the
// server could change the store as well.
type spool struct {
	f     *os.File
	block cipher.Block
	iv    []byte
	size  int64
}

func newSpool(dir string, r io.Reader) (*spool, error) {
	f, err := os.CreateTemp(dir, "include-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	key := make([]byte, 32)
	iv := make([]byte, aes.BlockSize)
	rand.Read(key)
	rand.Read(iv)
	block, err := aes.NewCipher(key)
	clear(key)
	if err != nil {
		f.Close()
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	n, err := io.Copy(cipher.StreamWriter{S: cipher.NewCTR(block, iv), W: bw}, r)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &spool{f: f, block: block, iv: iv, size: n}, nil
}

type spoolReader struct {
	io.Reader
}

func (spoolReader) Close() error { return nil }

func (s *spool) open() userdata.ReadCloser {
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, s.size), 64<<10)
	return spoolReader{cipher.StreamReader{S: cipher.NewCTR(s.block, s.iv), R: r}}
}

func (s *spool) close() { s.f.Close() }
