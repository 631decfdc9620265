"""Export a run's trained arm for serving, and prove it still scores what the report says.

    pipeline.py        `python -m harness export` / `make export`: the steps, the staging folder, the manifest
    artifacts.py       merge_and_unload, llama.cpp's converter and quantizer, the tokenizer check, sha256s
    served.py          the parity re-score: the arm's own prompts answered by the exported file, paired tests
    modelfile.py       the Ollama Modelfile and the check that its TEMPLATE renders as the tokenizer does
    families.py        Go templates of common chat formats, and the probe conversations
    gotemplate*.py     a renderer for the subset of Go text/template that Ollama's templates use
    modelfile_syntax.py  writing and parsing Modelfile text as Ollama's parser reads it
    ollama_create.py   `--ollama-create NAME`, when an Ollama server answers
"""
