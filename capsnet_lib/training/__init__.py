"""Everything that trains, saves and evaluates a model.

- config: TrainConfig, a run's settings and their checks; recipes: the named settings (paper, fast);
- loop: run_training and train_step, the epoch loop, resume and saving; schedules: the learning rate;
- runtime, device, precision: where and how fast it runs (device, bf16/fp16, memory layout, fused Adam);
- checkpoint, files, run_folder: atomic saves, the pretrained model, the output folder's rules;
- evaluation: predictions, accuracy, error reports; distributed: torchrun; ensemble: many models as one;
- budget: the epochs that fit a time budget; averaging: the moving average of the weights (--ema).
"""
