"""The Ollama Modelfile and its template check: the Go template renderer, the family templates against
real Jinja chat templates, the choice for the embedded SmolLM2 tokenizer, and Modelfile text round trips.

The Jinja templates of other families are the Hub's own, as the `trl` package ships them in
trl/chat_templates/ (kept identical to the Hub by TRL's weekly check; see its README there).
Every expected Go rendering below was also produced by Go 1.19's text/template on the same input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.export.gotemplate import GoTemplateError, render
from harness.export.modelfile import (
    FAMILIES,
    PROBES,
    TemplateMismatch,
    check_template,
    choose_template,
    hf_renderer,
    modelfile_text,
    ollama_data,
    parse_modelfile,
    probe_conversations,
)

CHAT = [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
TASK_SYSTEM = "You answer questions about the Python standard library.\nBe brief."


# --- the Go template renderer -------------------------------------------------------------------------------------

def test_trim_markers_eat_all_adjacent_whitespace_newlines_included():
    data = ollama_data(CHAT)
    assert render("a  \n {{- .System -}} \n\t b {{ .System }}  {{- \" x \" -}}  c", data) == "aSysb Sys x c"
    assert render("a {{- /* comment */ -}} b{{/* another */}}c", data) == "abc"


def test_range_with_index_and_the_last_message_idiom():
    template = ("{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
                "{{ $i }}:{{ .Role }}{{ if $last }}!{{ end }};{{ end }}")
    assert render(template, ollama_data(CHAT)) == "0:system;1:user;2:assistant;3:user!;"


def test_if_else_if_else_with_variables_and_functions():
    data = ollama_data(CHAT)
    chain = ('{{ range .Messages }}{{ if eq .Role "system" }}S{{ else if eq .Role "user" }}U{{ else }}A{{ end }}'
             "{{ end }}")
    assert render(chain, data) == "SUAU"
    assert render("{{ $x := 1 }}{{ range .Messages }}{{ $x = 2 }}{{ end }}{{ $x }}", data) == "2"
    assert render('{{ (index .Messages 0).Role }} {{ index .Messages 1 "Content" }} {{ len .System }}', data) == \
        "system Hi 3"
    assert render('{{ and .System "x" }} {{ or .Response "y" }} {{ not .Response }} {{ eq 1 2 3 1 }}', data) == \
        "x y true true"
    assert render("{{ with .System }}[{{ . }}]{{ else }}none{{ end }}{{ range .Tools }}t{{ else }}-{{ end }}",
                  data) == "[Sys]-"
    assert render('{{ printf "%s\\n%d" .System 5 }}{{ .Messages | len }}', data) == "Sys\n54"


def test_go_string_lengths_and_slices_count_bytes():
    data = {"S": "é東x"}
    assert render("{{ len .S }} {{ slice .S 0 2 }}", data) == "6 é"
    with pytest.raises(GoTemplateError, match="cuts a UTF-8 character"):
        render("{{ slice .S 0 3 }}", data)


@pytest.mark.parametrize("template, message", [
    ("{{ json .Messages }}", "unsupported function 'json' at line 1 col 4"),
    ("x\n  {{ .System | upper }}", "unsupported function 'upper' at line 2 col 16"),
    ("{{ if .System }}open", "has no matching {{end}} at line 1 col 4"),
    ("{{ $x }}", "undefined variable \\$x"),
    ("{{ 1.5 }}", "unsupported number '1.5'"),
    ("{{ .Prompt }}", "no field Prompt"),
    ("{{ .Messages }}", "refusing to print a list"),
    ('{{ eq 1 "a" }}', "incompatible types"),
    ("{{ /* a comment needs no space */ }}", "unsupported character '/'"),
    ('{{ template "x" }}', "unsupported function 'template'"),
    ("{{ break }}", "outside range"),
    ("{{ end }}", "unexpected {{end}}"),
])
def test_unsupported_or_invalid_syntax_raises_with_its_position(template: str, message: str):
    with pytest.raises(GoTemplateError, match=message):
        render(template, ollama_data(CHAT))


def test_ollama_data_is_what_ollama_hands_a_messages_template():
    data = ollama_data([{"role": "system", "content": "A"}, {"role": "system", "content": "B"},
                        {"role": "user", "content": "u1"}, {"role": "user", "content": "u2"}])
    assert data["System"] == "A\n\nB"
    assert [(m["Role"], m["Content"]) for m in data["Messages"]] == [("system", "A\n\nB"), ("user", "u1\n\nu2")]
    assert data["Response"] == "" and "Prompt" not in data


# --- the family templates against real chat templates ------------------------------------------------------------

def jinja_renderer(name: str, bos: str | None):
    """A Hub chat template rendered as transformers renders it, less the BOS text llama.cpp adds as a token."""
    import trl
    from transformers.utils.chat_template_utils import render_jinja_template

    template = (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")

    def render_hf(messages):
        text = render_jinja_template([messages], chat_template=template, add_generation_prompt=True,
                                     bos_token=bos or "<s>", eos_token="</s>")[0][0]
        assert bos is None or text.startswith(bos)
        return text[len(bos):] if bos else text

    return render_hf


@pytest.mark.parametrize("jinja, bos, family", [
    ("qwen2_5", None, "chatml"),
    ("llama3", "<|begin_of_text|>", "llama3"),
    ("llama3_1", "<|begin_of_text|>", "llama3.1"),
    ("gemma3", "<bos>", "gemma"),
    ("phi3", None, "phi3"),
    ("phi3_5", None, "phi3"),
])
def test_each_family_template_is_chosen_for_its_real_chat_template(jinja: str, bos: str | None, family: str):
    render_hf = jinja_renderer(jinja, bos)
    conversations = probe_conversations(TASK_SYSTEM, "What does os.path.join do?")
    assert check_template(FAMILIES[family], render_hf, conversations) == []
    assert choose_template(render_hf, conversations) == (family, FAMILIES[family])


def test_gemma_folds_the_system_text_into_the_first_user_turn():
    rendered = render(FAMILIES["gemma"], ollama_data(CHAT))
    assert rendered == ("<start_of_turn>user\nSys\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
                        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")


def test_whitespace_that_a_chat_template_trims_is_caught():
    padded = [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi  "}]
    mismatches = check_template(FAMILIES["llama3"], jinja_renderer("llama3", "<|begin_of_text|>"), [padded])
    assert [m.offset for m in mismatches] == [len("<|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|>"
                                                  "<|start_header_id|>user<|end_header_id|>\n\nHi")]


# --- the embedded SmolLM2 tokenizer --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2() -> str:
    from harness.models import resolve_model

    return resolve_model("embedded:smollm2-135m-instruct")


def test_smollm2_gets_chatml_and_passes_the_check(smollm2: str):
    render_hf = hf_renderer(smollm2)
    conversations = probe_conversations(TASK_SYSTEM, "What does os.path.join do?")
    family, template = choose_template(render_hf, conversations)
    assert family == "chatml"
    assert check_template(template, render_hf, conversations) == []
    assert render_hf(PROBES[0]).startswith("<|im_start|>system\n")  # SmolLM2 adds no BOS: nothing is stripped


def test_bos_text_is_stripped_only_when_asked_or_added_by_the_tokenizer(smollm2: str):
    kept, stripped = hf_renderer(smollm2)(CHAT), hf_renderer(smollm2, strip_bos=True)(CHAT)
    assert stripped == kept.removeprefix("<|im_start|>") != kept  # SmolLM2's BOS text is <|im_start|>


def test_a_request_without_system_is_checked_as_ollama_would_serve_it(smollm2: str):
    # SmolLM2's chat template adds its own system turn when a request has none; Ollama adds the Modelfile's
    # SYSTEM, if any. Only a SYSTEM equal to SmolLM2's default renders the same.
    render_hf, bare = hf_renderer(smollm2), [[{"role": "user", "content": "Hi"}]]
    [mismatch] = check_template(FAMILIES["chatml"], render_hf, bare)
    assert mismatch.go == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    default = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert check_template(FAMILIES["chatml"], render_hf, bare, modelfile_system=default) == []
    assert ollama_data(CHAT, modelfile_system="ignored")["Messages"][0]["Content"] == "Sys"


def test_a_wrong_template_fails_with_both_renderings_side_by_side(smollm2: str, monkeypatch: pytest.MonkeyPatch):
    render_hf = hf_renderer(smollm2)
    no_newline = FAMILIES["chatml"].replace("{{ .Role }}\n", "{{ .Role }}")
    mismatches = check_template(no_newline, render_hf, PROBES)
    assert len(mismatches) == len(PROBES)
    assert mismatches[0].offset == len("<|im_start|>system")
    assert mismatches[0].go[mismatches[0].offset:].startswith("You are")

    monkeypatch.setitem(FAMILIES, "chatml", no_newline)
    with pytest.raises(TemplateMismatch) as caught:
        choose_template(render_hf, PROBES)
    headline, *rest = str(caught.value).splitlines()
    assert headline.startswith("no Ollama template family") and "closest: chatml" in headline
    assert "character 18" in headline
    side_by_side = "\n".join(rest)
    assert "'<|im_start|>systemYou are a helpful assistant.<|im_end|>\\n' | '<|im_start|>system\\n'" in side_by_side


# --- Modelfile text ------------------------------------------------------------------------------------------------

def test_modelfile_round_trips_through_ollamas_parser_rules():
    template = FAMILIES["gemma"]
    system = 'Answer with "quotes", a backslash \\n and\n  indented lines  '
    text = modelfile_text("model.gguf", template, system, ["<end_of_turn>", "<eos>", "<end_of_turn>", 'say "hi"'],
                          {"num_ctx": 2048, "seed": 0, "top_k": [1]})
    assert text.startswith('FROM ./model.gguf\nTEMPLATE """{{- $prefix')
    assert 'PARAMETER stop "<end_of_turn>"\nPARAMETER stop "<eos>"\nPARAMETER stop "say "hi""\n' in text
    assert "PARAMETER temperature 0\nPARAMETER num_ctx 2048\n" in text
    parsed = parse_modelfile(text)
    assert (parsed["FROM"], parsed["TEMPLATE"], parsed["SYSTEM"]) == ("./model.gguf", template, system)
    assert parsed["PARAMETER"] == [("stop", "<end_of_turn>"), ("stop", "<eos>"), ("stop", 'say "hi"'),
                                   ("temperature", "0"), ("num_ctx", "2048"), ("seed", "0"), ("top_k", "1")]


@pytest.mark.parametrize("template, system, stops, gguf, message", [
    ("T", 'a """quoted""" word', [], "m.gguf", 'SYSTEM: the text contains """'),
    ('{{ "\\"\\"\\"" }}"""', "S", [], "m.gguf", 'TEMPLATE: the text contains """'),
    ("T", "zero\u200dwidth", [], "m.gguf", "SYSTEM: line 1 of the text holds U\\+200D"),
    ("T", "S", ['a"\nb'], "m.gguf", "PARAMETER stop: 'a\"\\\\nb' cannot be quoted"),
    ("T", "S", [""], "m.gguf", "empty stop"),
    ("T", "S", [], "out/m.gguf", "bare file name"),
])
def test_modelfile_refuses_what_ollama_would_read_differently(template, system, stops, gguf, message):
    with pytest.raises(HarnessError, match=message):
        modelfile_text(gguf, template, system, stops)


def test_parse_modelfile_reads_ollamas_syntax_and_names_the_line():
    parsed = parse_modelfile('# comment\nfrom llama3\nparameter stop "<|eot_id|>"\nMESSAGE user hi there\n'
                             'TEMPLATE """a\n\n"b"\n"""\nSYSTEM bare words here\n')
    assert parsed["FROM"] == "llama3" and parsed["TEMPLATE"] == 'a\n\n"b"\n' and parsed["SYSTEM"] == "bare words here"
    assert parsed["PARAMETER"] == [("stop", "<|eot_id|>")] and parsed["MESSAGE"] == ["user: hi there"]
    with pytest.raises(HarnessError, match="Modelfile line 2: unknown command 'FORM'"):
        parse_modelfile("FROM x\nFORM y\n")
    with pytest.raises(HarnessError, match="no FROM line"):
        parse_modelfile('SYSTEM "s"\n')
    with pytest.raises(HarnessError, match="unterminated quoted value"):
        parse_modelfile('FROM x\nSYSTEM """never closed\n')


def test_the_written_template_renders_what_the_tokenizer_renders(smollm2: str):
    render_hf = hf_renderer(smollm2)
    conversations = probe_conversations(TASK_SYSTEM)
    _, template = choose_template(render_hf, conversations)
    parsed = parse_modelfile(modelfile_text("smollm2.gguf", template, TASK_SYSTEM, ["<|im_end|>"]))
    assert check_template(parsed["TEMPLATE"], render_hf, conversations) == []
