"""Physics-informed networks: the 1D heat-equation PINN (`trainer`: model, collocation, Adam
then L-BFGS, `run_pinn`), its exact solutions (`exact`) and heat-map plots (`plots`).
`python -m ml.pinn SPEC.yaml` runs one from the command line."""
