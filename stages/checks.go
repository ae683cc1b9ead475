package stages

import "github.com/dsbuild/dsbuild/build"

// The model-using kinds name model profiles (and scaffold an environment)
// of the recipe; these checks make a name the recipe does not define bad
// input found when the recipe is loaded, located at the param, rather than
// a failure once the build is under way (see build.RecipeChecker).

// CheckRecipe checks the model profile named by model.
func (p *ProposeParams) CheckRecipe(r *build.Recipe, _ *build.Stage) error {
	return CheckModel(r, "model", p.Model)
}

// CheckRecipe checks the model profile named by model.
func (p *DecomposeParams) CheckRecipe(r *build.Recipe, _ *build.Stage) error {
	return CheckModel(r, "model", p.Model)
}

// CheckRecipe checks the model profile and the environment it names.
func (p *ScaffoldParams) CheckRecipe(r *build.Recipe, _ *build.Stage) error {
	if err := CheckModel(r, "model", p.Model); err != nil {
		return err
	}
	return CheckEnvironment(r, "environment", p.Environment)
}

// CheckRecipe checks the model profiles named by model and test_model.
func (p *DevelopParams) CheckRecipe(r *build.Recipe, _ *build.Stage) error {
	if err := CheckModel(r, "model", p.Model); err != nil {
		return err
	}
	if p.TestModel != "" {
		return CheckModel(r, "test_model", p.TestModel)
	}
	return nil
}

// CheckRecipe checks the model profile named by model.
func (p *DeriveFixParams) CheckRecipe(r *build.Recipe, _ *build.Stage) error {
	return CheckModel(r, "model", p.Model)
}

// CheckRecipe checks the model profiles named by model and agent_model.
func (p *DeriveReproduceParams) CheckRecipe(r *build.Recipe, st *build.Stage) error {
	if err := p.DeriveFixParams.CheckRecipe(r, st); err != nil {
		return err
	}
	if p.AgentModel != "" {
		return CheckModel(r, "agent_model", p.AgentModel)
	}
	return nil
}

// CheckRecipe checks the model profile a model policy names.
func (p *RolloutParams) CheckRecipe(r *build.Recipe, _ *build.Stage) error {
	if p.Policy != PolicyModel {
		return nil
	}
	return CheckModel(r, "model", p.Model)
}
