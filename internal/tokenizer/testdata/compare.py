# Encodes texts with the Hugging Face tokenizers library, for
# TestAgainstHuggingFace: argv[1] is a tokenizer.json, stdin a JSON list of
# strings; stdout a JSON list of id lists (add_special_tokens=False).
import json
import sys

from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
texts = json.load(sys.stdin)
json.dump([tok.encode(t, add_special_tokens=False).ids for t in texts], sys.stdout)
