package file

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The dotenv dialect read and written here is the common ground of
// systemd's EnvironmentFile, docker compose, godotenv and POSIX shells:
//
//   - one assignment per line: [export ]KEY=value, optional blanks around
//     "="; blank lines and lines starting with "#" are comments;
//   - a value is unquoted (ends at end of line or at a "#" preceded by a
//     blank; trailing blanks are dropped), single-quoted (literal, no
//     escapes) or double-quoted (\\ \" \$ \` \n \r \t are escapes, any
//     other backslash is kept); quoted values may span lines and may be
//     followed by blanks and a "# comment";
//   - lines that are not assignments are kept as they are, and so is every
//     byte outside the values being replaced (comments, order, export
//     prefixes, CRLF line endings, a UTF-8 byte order mark at the start);
//   - a variable assigned more than once is set at every assignment, so
//     that every reader (first-wins or last-wins) sees the new value; it
//     reads back only while all its assignments agree.
//
// A quoted value that is never closed, or is followed by anything other
// than blanks and a comment, makes the whole file unreadable: rewriting it
// would mean guessing where the following assignments start.

// utf8BOM is the byte order mark some editors put at the start of a file.
const utf8BOM = "\xEF\xBB\xBF"

// errDisagree is getDotenv's error for a variable assigned more than once
// with different values.
var errDisagree = errors.New("assignments disagree")

// dotenvKeyRE is what Config.Key must match: a portable variable name.
var dotenvKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// assignment is one KEY=value found in a dotenv file. start and end delimit
// the value as written (quotes included) in the file's bytes.
type assignment struct {
	key        string
	value      string
	start, end int
	quote      byte // 0, '\'' or '"'
	line       int  // 1-based line of the key
}

// dotenvError is a parse error. It names a line, never the line's text, so
// that a value cannot leak through it.
type dotenvError struct {
	line int
	msg  string
}

func (e *dotenvError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func isKeyStart(c byte) bool {
	return c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

func isKeyByte(c byte) bool {
	return isKeyStart(c) || '0' <= c && c <= '9' || c == '.' || c == '-'
}

// parseDotenv returns every assignment in data, in file order. A byte
// order mark at the start is skipped (and kept: offsets are into data).
func parseDotenv(data []byte) ([]assignment, error) {
	var out []assignment
	lineNo := 1
	pos := len(bomOf(data))
	for pos < len(data) {
		lineEnd := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			lineEnd = pos + i
		}
		a, next, ok, err := parseAssignment(data, pos, lineEnd, lineNo)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, a)
		}
		lineNo += bytes.Count(data[pos:next], []byte{'\n'})
		pos = next
	}
	return out, nil
}

// parseAssignment parses the line data[pos:lineEnd]. It returns the offset
// where the next line starts, which lies past lineEnd when a quoted value
// spans lines.
func parseAssignment(data []byte, pos, lineEnd, lineNo int) (a assignment, next int, ok bool, err error) {
	next = lineEnd + 1
	if next > len(data) {
		next = len(data)
	}
	i := pos
	for i < lineEnd && isBlank(data[i]) {
		i++
	}
	if i < lineEnd && data[i] == '#' {
		return a, next, false, nil
	}
	if rest := data[i:lineEnd]; bytes.HasPrefix(rest, []byte("export")) && len(rest) > 6 && isBlank(rest[6]) {
		j := i + 6
		for j < lineEnd && isBlank(data[j]) {
			j++
		}
		if j < lineEnd && isKeyStart(data[j]) {
			i = j
		}
	}
	if i >= lineEnd || !isKeyStart(data[i]) {
		return a, next, false, nil
	}
	keyStart := i
	for i < lineEnd && isKeyByte(data[i]) {
		i++
	}
	key := string(data[keyStart:i])
	for i < lineEnd && isBlank(data[i]) {
		i++
	}
	if i >= lineEnd || data[i] != '=' {
		return a, next, false, nil
	}
	i++
	afterEq := i
	for i < lineEnd && isBlank(data[i]) {
		i++
	}
	a = assignment{key: key, line: lineNo}
	if i < lineEnd && (data[i] == '\'' || data[i] == '"') {
		q := data[i]
		closing, value, found := scanQuoted(data, i)
		if !found {
			return a, next, false, &dotenvError{lineNo, "unterminated quoted value"}
		}
		a.quote, a.value, a.start, a.end = q, value, i, closing+1
		// The rest of the closing quote's line may hold only blanks and a
		// comment.
		restEnd := len(data)
		if k := bytes.IndexByte(data[a.end:], '\n'); k >= 0 {
			restEnd = a.end + k
		}
		rest := bytes.TrimSuffix(data[a.end:restEnd], []byte{'\r'})
		if len(rest) > 0 {
			trimmed := bytes.TrimLeft(rest, " \t")
			if !isBlank(rest[0]) || len(trimmed) > 0 && trimmed[0] != '#' {
				return a, next, false, &dotenvError{lineNo, "unexpected text after quoted value"}
			}
		}
		next = restEnd + 1
		if next > len(data) {
			next = len(data)
		}
		return a, next, true, nil
	}
	line := bytes.TrimSuffix(data[:lineEnd], []byte{'\r'})
	if i < len(line) && data[i] == '#' && i > afterEq {
		// "KEY= # comment": an empty value, placed right after "=" so that
		// a replacement does not run into the comment.
		a.start, a.end = afterEq, afterEq
		return a, next, true, nil
	}
	end := i
	for end < len(line) {
		if line[end] == '#' && end > i && isBlank(line[end-1]) {
			break
		}
		end++
	}
	for end > i && isBlank(line[end-1]) {
		end--
	}
	a.start, a.end, a.value = i, end, string(line[i:end])
	if a.start == a.end {
		a.start, a.end = afterEq, afterEq
	}
	return a, next, true, nil
}

// scanQuoted finds the quote closing the one at data[open] and returns its
// offset and the decoded value.
func scanQuoted(data []byte, open int) (closing int, value string, found bool) {
	q := data[open]
	var b strings.Builder
	for i := open + 1; i < len(data); i++ {
		c := data[i]
		switch {
		case c == q:
			return i, b.String(), true
		case q == '"' && c == '\\' && i+1 < len(data):
			i++
			switch e := data[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '\\', '"', '$', '`':
				b.WriteByte(e)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return 0, "", false
}

// bomOf returns the byte order mark data starts with, or nothing.
func bomOf(data []byte) []byte {
	if bytes.HasPrefix(data, []byte(utf8BOM)) {
		return data[:len(utf8BOM)]
	}
	return nil
}

// lookupDotenv returns the last assignment of key, which is the one shells
// and dotenv libraries honour.
func lookupDotenv(as []assignment, key string) (assignment, bool) {
	for i := len(as) - 1; i >= 0; i-- {
		if as[i].key == key {
			return as[i], true
		}
	}
	return assignment{}, false
}

// getDotenv returns key's value: that of its last assignment, and, when an
// earlier one holds another value, an error matching errDisagree that names
// the lines (never the values). ok is false when key is not assigned.
func getDotenv(as []assignment, key string) (value string, ok bool, err error) {
	last, ok := lookupDotenv(as, key)
	if !ok {
		return "", false, nil
	}
	var lines []string
	differ := false
	for _, a := range as {
		if a.key == key {
			lines = append(lines, strconv.Itoa(a.line))
			differ = differ || a.value != last.value
		}
	}
	if differ {
		err = fmt.Errorf("%s is assigned on lines %s and the %w; a Put sets them all", key, strings.Join(lines, ", "), errDisagree)
	}
	return last.value, true, err
}

// setDotenv returns data with every assignment of key holding value, or
// with "KEY=value" appended when key is not assigned. Every other byte is
// kept.
func setDotenv(data []byte, key, value string) ([]byte, error) {
	as, err := parseDotenv(data)
	if err != nil {
		return nil, err
	}
	if _, ok := lookupDotenv(as, key); ok {
		out := make([]byte, 0, len(data)+len(value)+8)
		pos := 0
		for _, a := range as { // in file order, so the offsets only grow
			if a.key != key {
				continue
			}
			out = append(out, data[pos:a.start]...)
			out = append(out, quoteDotenv(value, a.quote)...)
			pos = a.end
		}
		return append(out, data[pos:]...), nil
	}
	eol := "\n"
	if i := bytes.IndexByte(data, '\n'); i > 0 && data[i-1] == '\r' {
		eol = "\r\n"
	}
	out := make([]byte, 0, len(data)+len(key)+len(value)+8)
	out = append(out, data...)
	switch {
	case len(out) == len(bomOf(data)) || out[len(out)-1] == '\n':
	case out[len(out)-1] == '\r': // a CRLF cut short: complete it
		out = append(out, '\n')
	default:
		out = append(out, eol...)
	}
	out = append(out, key+"="+quoteDotenv(value, 0)+eol...)
	return out, nil
}

// quoteDotenv writes value in the style prefer (the replaced value's) when
// that style can hold it, unquoted when every byte is safe there, and
// double-quoted with escapes otherwise.
func quoteDotenv(value string, prefer byte) string {
	switch {
	case prefer == '\'' && !strings.ContainsAny(value, "'\n\r"):
		return "'" + value + "'"
	case prefer == 0 && value != "" && isPlain(value):
		return value
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\', '"', '$', '`':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// isPlain reports whether value can be written unquoted and mean the same
// to every dotenv reader and shell.
func isPlain(value string) bool {
	for i := 0; i < len(value); i++ {
		c := value[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("_-.,:/+=@%", rune(c)) {
			return false
		}
	}
	return true
}
