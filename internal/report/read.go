package report

import (
	"fmt"
	"os"
	"path/filepath"
)

// ReadResults reads benchmarks.json from a results directory or a file
// path, returning the directory it is in.
func ReadResults(path string) (*File, string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading results: %w", err)
	}
	file, dir := path, filepath.Dir(path)
	if st.IsDir() {
		file, dir = filepath.Join(path, JSONFile), path
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, "", fmt.Errorf("reading results: %w", err)
	}
	defer fh.Close()
	f, err := ReadJSON(fh)
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", file, err)
	}
	return f, dir, nil
}
