package schema

import (
	"encoding/binary"
	"errors"
	"math"
)

// A compact binary encoding of TrajectoryRow for the external sort's run
// files: uvarint-length-prefixed strings and fixed-width numbers in field
// order. It is internal (never written to a dataset) and several times
// faster to decode than JSON, which dominated export time.

type rowEncoder struct{ b []byte }

func (e *rowEncoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *rowEncoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *rowEncoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func encodeTrajectoryRow(r *TrajectoryRow) []byte {
	size := 64 + len(r.Patch)
	for _, m := range r.Messages {
		size += 4 + len(m)
	}
	size += len(r.Tools)
	e := rowEncoder{b: make([]byte, 0, size)}
	e.str(r.TrajectoryID)
	e.str(r.InstanceID)
	e.str(r.Repo)
	e.str(r.SourceProject)
	e.str(r.TaskType)
	e.str(r.Model)
	e.str(r.Policy)
	e.uvarint(uint64(len(r.Messages)))
	for _, m := range r.Messages {
		e.str(string(m))
	}
	e.str(string(r.Tools))
	e.str(r.Patch)
	if r.Resolved {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(r.Reward))
	e.str(r.ExitStatus)
	e.varint(r.NumTurns)
	e.varint(r.PromptTokens)
	e.varint(r.CompletionTokens)
	return e.b
}

var errCorruptRow = errors.New("corrupt row record")

type rowDecoder struct {
	b   []byte
	err error
}

func (d *rowDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorruptRow
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *rowDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorruptRow
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *rowDecoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errCorruptRow
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a list length, refusing lengths the remaining bytes cannot hold.
func (d *rowDecoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errCorruptRow
		return 0
	}
	return int(n)
}

func decodeTrajectoryRow(b []byte) (TrajectoryRow, error) {
	d := rowDecoder{b: b}
	var r TrajectoryRow
	r.TrajectoryID = d.str()
	r.InstanceID = d.str()
	r.Repo = d.str()
	r.SourceProject = d.str()
	r.TaskType = d.str()
	r.Model = d.str()
	r.Policy = d.str()
	r.Messages = make([]JSONText, d.count())
	for i := range r.Messages {
		r.Messages[i] = JSONText(d.str())
	}
	r.Tools = JSONText(d.str())
	r.Patch = d.str()
	if d.err == nil && len(d.b) >= 9 {
		r.Resolved = d.b[0] == 1
		r.Reward = math.Float64frombits(binary.LittleEndian.Uint64(d.b[1:9]))
		d.b = d.b[9:]
	} else {
		d.err = errCorruptRow
	}
	r.ExitStatus = d.str()
	r.NumTurns = d.varint()
	r.PromptTokens = d.varint()
	r.CompletionTokens = d.varint()
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorruptRow
	}
	return r, d.err
}
