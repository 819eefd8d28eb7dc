"""MONAI Deploy App SDK application for MT-TransUNet (see ``docs/deploy.md``).

Needs the optional deploy environment (``.ci/setup_deploy_env.sh``: monai-deploy-app-sdk 4.0.0,
holoscan); importing this package alone does not import the SDK. Entry point:
``python -m monai_mtt.apps.deploy -i IN -o OUT [-m MODEL]``; the application is
:class:`monai_mtt.apps.deploy.app.MTTDeployApp`, its operators live in
:mod:`monai_mtt.apps.deploy.operators`.
"""
