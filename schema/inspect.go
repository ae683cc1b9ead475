package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// inspectMaxString is how much of each string value Inspect prints.
const inspectMaxString = 200

// Inspect writes a summary of the Parquet file at path to w: created_by,
// row and row-group counts, compression, the schema, and the first rows
// as JSON objects (one per line, string values longer than 200 bytes
// shortened). It reads any Parquet file, not only dsbuild's.
func Inspect(path string, w io.Writer, rows int) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	pf, err := parquet.OpenFile(f, fi.Size())
	if err != nil {
		return fmt.Errorf("inspect %s: not a readable Parquet file: %w", path, err)
	}
	md := pf.Metadata()
	codecs := map[string]bool{}
	var codecList []string
	for _, rg := range md.RowGroups {
		for _, c := range rg.Columns {
			name := c.MetaData.Codec.String()
			if !codecs[name] {
				codecs[name] = true
				codecList = append(codecList, name)
			}
		}
	}
	fmt.Fprintf(w, "file:        %s\n", path)
	fmt.Fprintf(w, "bytes:       %d\n", fi.Size())
	fmt.Fprintf(w, "created_by:  %s\n", md.CreatedBy)
	fmt.Fprintf(w, "rows:        %d\n", pf.NumRows())
	fmt.Fprintf(w, "row groups:  %d\n", len(md.RowGroups))
	fmt.Fprintf(w, "compression: %v\n", codecList)
	fmt.Fprintf(w, "schema:\n%s\n", pf.Schema())
	if rows <= 0 || pf.NumRows() == 0 {
		return nil
	}
	n := min(int64(rows), pf.NumRows())
	fmt.Fprintf(w, "first %d rows:\n", n)
	r := parquet.NewReader(pf)
	defer r.Close()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := int64(0); i < n; i++ {
		row := map[string]any{}
		if err := r.Read(&row); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("inspect %s: row %d: %w", path, i, err)
		}
		if err := enc.Encode(shorten(row)); err != nil {
			return fmt.Errorf("inspect %s: row %d: %w", path, i, err)
		}
	}
	return nil
}

// shorten returns v with long strings cut to inspectMaxString bytes.
func shorten(v any) any {
	switch x := v.(type) {
	case string:
		if len(x) <= inspectMaxString {
			return x
		}
		cut := inspectMaxString
		for cut > 0 && !utf8.RuneStart(x[cut]) {
			cut--
		}
		return fmt.Sprintf("%s…(+%d bytes)", x[:cut], len(x)-cut)
	case []byte:
		return shorten(string(x))
	case map[string]any:
		for k, e := range x {
			x[k] = shorten(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = shorten(e)
		}
		return x
	}
	return v
}
