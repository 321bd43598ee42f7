"""NeuronCard in a real JupyterLab 4 (headless Chromium) on the default model: corpus text containing
``<img src=x onerror=...>`` is shown literally (no element created), and asking for another neuron in the
card's own inputs reaches the kernel and redraws."""
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

CARD = ".fw-neuron-card"


@pytest.fixture(scope="module")
def page(lab):
    return lab.open_and_run("tests/browser/neuron_card.ipynb", f"{CARD} .fw-card-triggers li", width=1200, height=1000)


def test_corpus_markup_is_shown_as_text(lab, page):
    items = page.evaluate(f"() => [...document.querySelectorAll('{CARD} .fw-card-triggers li')].map(e => [e.textContent, e.title])")
    assert "Markup like <img" in items[0][0], items  # the prefix, tags and all, as text
    assert items[0][1] == "Markup like <img src=x onerror=alert(1)> must stay text."  # the full sentence on hover
    assert page.evaluate(f"() => document.querySelectorAll('{CARD} img').length") == 0
    layer, neuron = lab.kernel_json("[layer, neuron]")
    assert page.locator(f"{CARD} .fw-title").text_content() == f"Neuron L{layer}.N{neuron}"
    assert page.evaluate(f"() => document.querySelectorAll('{CARD} .fw-card-tok').length") == lab.kernel_json(
        "len(card.card['prompt']['tokens'])")


def test_another_neuron_from_the_card_inputs(lab, page):
    page.fill(f"{CARD} .fw-card-nav input[aria-label=layer]", "20")
    page.fill(f"{CARD} .fw-card-nav input[aria-label=neuron]", "7")
    page.click(f"{CARD} .fw-card-nav button")
    page.wait_for_function(f"() => document.querySelector('{CARD} .fw-title').textContent === 'Neuron L20.N7'")
    assert lab.kernel_json("[card.card['layer'], card.card['neuron'], card.error]") == [20, 7, ""]
    expected = lab.kernel_json("[t for t, _ in card.card['value']['top']]")
    shown = page.evaluate(f"() => [...document.querySelectorAll('{CARD} .fw-card-promoted .fw-token')].map(e => e.textContent)")
    assert len(shown) == len(expected) == 10
