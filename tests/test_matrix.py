"""The matrix is derived from copier.yml: check the derivation itself."""

import itertools

from tests import matrix


def test_every_toggle_choice_appears_in_the_matrix() -> None:
    variants = matrix.all_variants()
    for name, values in matrix.toggles().items():
        assert {variant[name] for variant in variants} == set(values), name


def test_matrix_is_the_full_product_of_the_toggles() -> None:
    expected = 1
    for values in matrix.toggles().values():
        expected *= len(values)
    variants = matrix.all_variants()
    assert len(variants) == expected
    assert len({tuple(sorted(v.items())) for v in variants}) == expected


def test_known_toggles_are_derived() -> None:
    assert {"storage_backend", "email_provider", "token_transport", "deployment"} <= set(
        matrix.toggles()
    )
    assert "python_version" not in matrix.toggles()


def test_defaults_are_valid_choices() -> None:
    for name, value in matrix.defaults().items():
        assert value in matrix.toggles()[name], name


def test_pairwise_selection_covers_every_pair_of_answers() -> None:
    selection = matrix.pairwise_variants()
    names = sorted(matrix.toggles())
    for first, second in itertools.combinations(names, 2):
        for a in matrix.toggles()[first]:
            for b in matrix.toggles()[second]:
                assert any(v[first] == a and v[second] == b for v in selection), (first, a, b)
    assert selection[0] == matrix.defaults()
    assert len(selection) < len(matrix.all_variants())
