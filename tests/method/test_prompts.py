from synood.method.prompts import context_prompt


def test_context_prompt_joins_labels_and_cuts_the_context_like_the_reference():
    assert context_prompt(["bamboo", " tourist ", "", "leaf"]) == "A photo only remain bamboo, tourist, leaf"
    long = ["railing number %d" % i for i in range(20)]
    prompt = context_prompt(long)
    context = prompt[len("A photo only remain "):]
    assert len(context) <= 73 and ", ".join(long).startswith(context) and not context.endswith((",", " "))
    assert context_prompt(["sky"], template="{} only", max_chars=2) == "sk only"
