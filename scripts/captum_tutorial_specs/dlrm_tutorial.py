"""DLRM_Tutorial: the notebook imports ``DLRM_Net`` from a clone of Facebook's DLRM repository and loads weights
trained on Criteo's data (``kg.pt``, fetched with wget). Here our stand-in ``DLRM_Net`` (``_dlrm``: the same
constructor, layers and methods, tables capped at 1000 rows, seeded random weights) installed as
``dlrm_s_pytorch``; the two data files ship with the tutorials and are loaded as written, their sparse indices then
mapped modulo the capped table sizes. The predictions of the random model are not Criteo's: the ``probs`` the data
files carry (the trained model's) still pick the samples of the neuron cells. The Captum cells run as written."""

PRELUDE = "from captum_tutorial_specs import _dlrm\n_dlrm.install()\n"

REPLACE = {
    # stands in for torch.load('models/kg.pt') (downloaded with wget): the stand-in's seeded random weights
    6: '''dlrm.reset_parameters(seed=0)
dlrm = dlrm.to(device)
''',
    # the notebook's cell, then the sparse indices (rows of tables of up to 10 million) modulo the capped tables
    7: lambda cell: cell + '''
for batch in (S_T_Z_test_above_0999, S_T_Z_test):  # the stand-in's tables have at most 1000 rows
    batch['lS_i_test'] = batch['lS_i_test'] % dlrm.table_rows[:, None]
''',
}
