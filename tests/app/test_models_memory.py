"""The app under a memory limit: a refused load is one toast, and the app keeps serving every tab."""
import pytest
from gradio_client import Client, handle_file

from bench.common.serve import running_app
from synood.data import photos


def test_refused_load_is_one_toast_and_the_other_tabs_still_answer(tmp_path):
    with running_app("--suite", "tiny", "--memory-limit", "1MB", log=tmp_path / "app.log") as url:
        client = Client(url, verbose=False)
        table = client.predict(api_name="/components")
        assert "does not fit: loading it is refused" in table and "Memory est. fp32" in table
        with pytest.raises(Exception, match="needs about .* of RAM at float32.*Options:"):
            client.predict(api_name="/load_components")
        with pytest.raises(Exception, match="context labeller .*the memory limit allows 1 MB"):
            client.predict(handle_file(str(photos.by_name("coffee").path)), api_name="/context")
        assert client.predict("sand\nsky", api_name="/prompt") == "A photo only remain sand, sky"
        assert 'data-suite="tiny"' in client.predict(api_name="/components")
    log = (tmp_path / "app.log").read_text()
    assert "Traceback" not in log
