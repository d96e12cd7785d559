"""The nets' options declared once (gan_trainer.nets.options): the constructors, config(),
RunConfig's fields and the run's translation all follow the declaration."""

import dataclasses

import pytest

from gan_trainer.nets import (
    ConditionalDiscriminator,
    ConditionalGenerator,
    Discriminator,
    DiscriminatorOptions,
    Generator,
    GeneratorOptions,
    build_discriminator,
    build_generator,
)
from gan_trainer.nets.options import run_names
from gan_trainer.run import ConfigError, RunConfig, build_networks
from gan_trainer.run.options import allowed, declared

DECLARED = [(cls, f) for cls in (GeneratorOptions, DiscriminatorOptions)
            for f in dataclasses.fields(cls)]
RUN_SET = [(cls, f) for cls, f in DECLARED if f.metadata['run'] is not None]
# What an option needs beside it to take another value (a combination rule).
COMPANIONS = {'fc_activation': {'fc_width': 3}, 'padding': {'downsample': 'max_pool'}}


def other_value(field):
    """A value of the option's kind and rule that is not its default."""
    meta = field.metadata
    if meta['choices'] is not None:
        return next(c for c in meta['choices'] if c != field.default)
    return {'bool': not field.default, 'int': 3, 'float': 0.25}[meta['kind']]


def ids(cases):
    return [f'{cls.__name__}.{f.name}' for cls, f in cases]


@pytest.mark.parametrize('cls, field', RUN_SET, ids=ids(RUN_SET))
def test_each_run_option_is_its_declaration(cls, field):
    run_field = declared(RunConfig)[field.metadata['run']]
    assert run_field.default == field.default
    assert allowed(run_field) == (None if field.metadata['choices'] is None
                                  else tuple(field.metadata['choices']))
    assert run_field.metadata['checks'] == field.metadata['checks']
    assert run_field.metadata['help'] == field.metadata['help']
    assert run_field.metadata['networks'] and run_field.metadata['preset']
    assert run_field.metadata['kind'] == field.metadata['kind']


def test_the_run_has_no_network_option_the_nets_do_not_declare_or_the_shape():
    # What every architecture takes, the label of the conditional nets, and the
    # options build_networks turns into several of D's (out_dim from the loss too;
    # minibatch kernels and their dimension).
    shape = {'arch', 'n_hidden', 'widths', 'base_width', 'ksize', 'conditional', 'gen_cond',
             'dis_cond'}
    made_into_others = {'dis_out_dim', 'minibatch_discrimination'}
    names = {f.metadata['run'] for _, f in RUN_SET}
    networks = {n for n, f in declared(RunConfig).items()
                if f.metadata['networks'] and f.metadata['group'] == 'networks'}
    assert networks - shape - made_into_others == names


CASES = [(cls, f, conditional) for cls, f in RUN_SET
         for conditional in ([False, True] if f.metadata['conditional'] else [False])]


@pytest.mark.parametrize('cls, field, conditional', CASES,
                         ids=[f'{cls.__name__}.{f.name}-{"conditional" if c else "plain"}'
                              for cls, f, c in CASES])
def test_each_run_option_reaches_its_net_and_its_config(cls, field, conditional):
    name, run = field.name, field.metadata['run']
    value = other_value(field)
    companions = {run_names(cls)[k]: v for k, v in COMPANIONS.get(name, {}).items()}
    config = RunConfig(base_width=4, conditional=conditional, **{run: value}, **companions)
    gen, dis = build_networks(config, (1, 8, 8), n_classes=3)
    net, other = (gen, dis) if cls is GeneratorOptions else (dis, gen)
    assert getattr(net, name) == value
    assert net.config()[name] == value
    rebuilt = (build_generator if net is gen else build_discriminator)(net.config())
    assert getattr(rebuilt, name) == value
    # The other net has the option only if it declares it under the same run name.
    shared = run_names(GeneratorOptions if cls is DiscriminatorOptions else DiscriminatorOptions)
    if run not in shared.values():
        assert run not in other.config()


def test_default_configs_record_only_what_they_always_did():
    assert set(Generator(size=8, widths=[4]).config()) == {
        'size', 'channels', 'n_hidden', 'widths', 'ksize'}
    assert set(Discriminator(size=8, widths=[4]).config()) == {
        'size', 'channels', 'widths', 'ksize', 'norm', 'spectral_norm'}


@pytest.mark.parametrize('cls', [Generator, Discriminator, ConditionalGenerator,
                                 ConditionalDiscriminator])
def test_an_unknown_option_is_a_type_error_naming_the_net_and_its_options(cls):
    kwargs = {'n_classes': 2} if cls.__name__.startswith('Conditional') else {}
    with pytest.raises(TypeError, match=rf"{cls.__name__} got an unexpected keyword argument "
                                        r"'fc_widht'; its options are .*fc_width") as info:
        cls(size=8, widths=[4], fc_widht=3, **kwargs)
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('cls, field', DECLARED, ids=ids(DECLARED))
def test_a_value_of_the_wrong_kind_names_the_option(cls, field):
    wrong = 'x' if field.metadata['kind'] != 'str' else 3
    net = Generator if cls is GeneratorOptions else Discriminator
    with pytest.raises(ValueError, match=rf'^(unknown {field.name} |{field.name} must be )'):
        net(size=8, widths=[4], **{field.name: wrong})


def test_the_net_and_the_run_check_one_rule_each_in_its_words():
    with pytest.raises(ValueError, match=r'^dropout must be in \[0, 1\), got 1.5$'):
        Discriminator(size=8, widths=[4], dropout=1.5)
    with pytest.raises(ConfigError, match=r'^dis_dropout: must be in \[0, 1\), got 1.5$'):
        RunConfig(dis_dropout=1.5)


def test_options_of_numpy_scalars_become_python_numbers():
    import numpy

    dis = Discriminator(size=8, widths=[4], fc_width=numpy.int64(3),
                        noise_sigma=numpy.float32(0.5))
    assert type(dis.fc_width) is int and type(dis.noise_sigma) is float
    assert dis.config()['fc_width'] == 3 and dis.config()['noise_sigma'] == 0.5


UNCONDITIONAL_ONLY = [(cls, f) for cls, f in DECLARED if not f.metadata['conditional']]


@pytest.mark.parametrize('cls, field', UNCONDITIONAL_ONLY, ids=ids(UNCONDITIONAL_ONLY))
def test_the_conditional_nets_refuse_the_unconditional_ones_options(cls, field):
    net = ConditionalGenerator if cls is GeneratorOptions else ConditionalDiscriminator
    with pytest.raises(TypeError, match=rf'^{net.__name__} takes no {field.name}: it is an '
                                        'option of the unconditional nets only$'):
        net(n_classes=2, size=8, widths=[4], **{field.name: field.default})
    # ... and a conditional run leaves them out, so its nets build.
    gen, dis = build_networks(RunConfig(base_width=4, conditional=True), (1, 8, 8), n_classes=2)
    assert isinstance(gen if cls is GeneratorOptions else dis, net)
